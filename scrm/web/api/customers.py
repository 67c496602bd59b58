"""Customers: search and filter, one customer's 360° view, and why they score what they score."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from graph.reports import explain_customer
from graph.views import ScoreFilter, customer_view, scored_filter
from scrm.access import Principal
from scrm.queries import list_customers
from scrm.web.api.deps import Page, PagingDep, StoreDep, viewer
from scrm.web.api.models import DB_INT, NO_NUL, Stage

__all__ = ["router"]

router = APIRouter(prefix="/customers", tags=["customers"])

CustomerId = Annotated[int, Path(ge=1, le=DB_INT, description="a customer id")]


class CustomerItem(BaseModel):
    id: int
    name: str
    keys: list[str]
    orders: int
    spent_minor: dict[str, int]
    last_purchase: str | None


class CustomerView(BaseModel):
    """One customer's 360° view (a merged customer answers with the one it was merged into)."""

    id: int
    name: str
    created_at: datetime | None
    opted_out_at: datetime | None
    merged_from: int | None
    identities: list[dict[str, Any]]
    merges: list[dict[str, Any]]
    follows: list[dict[str, Any]]
    acquisition: dict[str, Any]
    tags: list[str]
    purchase_totals: dict[str, dict[str, int]]
    purchases: list[dict[str, Any]]
    interactions: list[dict[str, Any]]
    score: dict[str, Any] | None
    score_history: list[dict[str, Any]]
    stage_history: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]


@router.get("", response_model=Page[CustomerItem], summary="Search and filter customers")
def customers(
    store: StoreDep,
    page: PagingDep,
    _caller: Annotated[Principal, viewer],
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=NO_NUL,
            description="3 characters or more: found anywhere in a name or any key (phone, email, "
            "openid, unionid...), ignoring case; 1 or 2 characters: the start of a name",
        ),
    ] = None,
    sort: Annotated[Literal["id", "spent", "recent", "orders"], Query()] = "id",
    stage: Annotated[Stage | None, Query(description="lifecycle stage in the latest scores")] = None,
    community: Annotated[
        int | None, Query(ge=0, le=DB_INT, description="community id (latest scores)")
    ] = None,
    min_social_value: Annotated[
        float | None, Query(ge=0, le=100, allow_inf_nan=False, description="social value at least (0..100)")
    ] = None,
    role: Annotated[Literal["leader", "bridge"] | None, Query(description="community role")] = None,
) -> Any:
    """Customers (merged ones left out) matching ``q`` and, on the latest scores, the given stage,
    community, least social value and role (these need `scrm score` to have run: 409 otherwise)."""
    within = scored_filter(
        store, ScoreFilter(stage=stage, community=community, min_social_value=min_social_value, role=role)
    )
    total, rows = list_customers(
        store, search=q, sort=sort, limit=page.limit, offset=page.offset, within=within
    )
    return {"total": total, "limit": page.limit, "offset": page.offset, "items": [r.as_dict() for r in rows]}


@router.get("/{customer_id}", response_model=CustomerView, summary="One customer's 360° view")
def customer(
    customer_id: CustomerId,
    store: StoreDep,
    _caller: Annotated[Principal, viewer],
    limit: Annotated[int, Query(ge=1, le=500, description="latest rows of each history")] = 50,
) -> Any:
    """Identities (and merges), follows, tags, interactions, purchases, scores run by run, lifecycle
    stage changes and campaign deliveries, newest first."""
    return customer_view(store, customer_id, limit=limit)


@router.get("/{customer_id}/explain", summary="Why a customer scores what they score")
def explain(
    customer_id: CustomerId,
    store: StoreDep,
    _caller: Annotated[Principal, viewer],
    history: Annotated[int, Query(ge=1, le=100, description="runs in the trend")] = 5,
) -> dict[str, Any]:
    """Each component of the social value with its points, RFM and lifetime value, the stage and why,
    an open churn warning and the trend over the last runs (as `scrm explain`)."""
    return explain_customer(store, customer_id, history=history)
