"""Customers: search and filter, and one customer's 360° view."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from scrm.access import Principal
from scrm.queries import customer_record, list_customers
from scrm.web.api.deps import Page, PagingDep, StoreDep, viewer

__all__ = ["router"]

router = APIRouter(prefix="/customers", tags=["customers"])


class CustomerItem(BaseModel):
    id: int
    name: str
    keys: list[str]
    orders: int
    spent_minor: dict[str, int]
    last_purchase: str | None


@router.get("", response_model=Page[CustomerItem], summary="Search and list customers")
def customers(
    store: StoreDep,
    page: PagingDep,
    _caller: Annotated[Principal, viewer],
    q: Annotated[str | None, Query(max_length=200, description="matches names and keys")] = None,
    sort: Annotated[Literal["id", "spent", "recent", "orders"], Query()] = "id",
) -> Any:
    total, rows = list_customers(store, search=q, sort=sort, limit=page.limit, offset=page.offset)
    return {"total": total, "limit": page.limit, "offset": page.offset, "items": [r.as_dict() for r in rows]}


@router.get("/{customer_id}", summary="One customer's 360° view")
def customer(customer_id: int, store: StoreDep, _caller: Annotated[Principal, viewer]) -> dict[str, Any]:
    return customer_record(store, customer_id)
