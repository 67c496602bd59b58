"""Communities of the latest scores: their leaders and bridges, and each one's members."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel

from graph.reports import community_report, top_customers
from graph.views import community_count, scored_count
from scrm.access import Principal
from scrm.errors import NotFound
from scrm.web.api.deps import PagingDep, StoreDep, viewer
from scrm.web.api.models import DB_INT
from scrm.web.api.scores import Ranked, RunPage

__all__ = ["router"]

router = APIRouter(prefix="/communities", tags=["communities"])


class Person(BaseModel):
    id: int
    name: str


class Bridge(Person):
    bridge_score: float


class CommunityItem(BaseModel):
    community_id: int
    label: str
    size: int
    modularity_share: float
    leaders: list[Person]
    bridges: int
    top_bridges: list[Bridge]


class CommunityPage(RunPage):
    items: list[CommunityItem]


class CommunityDetail(RunPage):
    """One community, and one page of its members ranked by social value."""

    community: CommunityItem
    items: list[Ranked]


@router.get("", response_model=CommunityPage, summary="Communities with their leaders and bridges")
def communities(store: StoreDep, page: PagingDep, _caller: Annotated[Principal, viewer]) -> Any:
    """The communities, largest first, each with its leaders and its strongest bridges (members tied
    to other communities), as `scrm communities`."""
    run, items = community_report(store, limit=page.limit, offset=page.offset)
    return {**run.as_dict(), **page.model_dump(), "total": community_count(store), "items": items}


@router.get("/{community_id}", response_model=CommunityDetail, summary="One community and its members")
def community(
    community_id: Annotated[int, Path(ge=0, le=DB_INT)],
    store: StoreDep,
    page: PagingDep,
    _caller: Annotated[Principal, viewer],
) -> Any:
    """The community's leaders and bridges, and its members ranked by social value (paginated)."""
    run, rows = community_report(store, community=community_id)
    found = rows[0] if rows else None
    if found is None:
        raise NotFound(
            f"no community {community_id} in the latest scores (run {run.id}): see GET /communities"
        )
    _, members = top_customers(store, community=community_id, limit=page.limit, offset=page.offset)
    items = [{**row, "rank": page.offset + i} for i, row in enumerate(members, 1)]
    total = scored_count(store, community=community_id)
    return {**run.as_dict(), **page.model_dump(), "total": total, "community": found, "items": items}
