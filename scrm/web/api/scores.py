"""Scores: the leaderboard, the lifecycle funnel and churn warnings, from the latest `scrm score` run.

Each answer names the run it reads (``run_id``, ``as_of``); without any run the answer is 409
``no_scores``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from graph.reports import TopBy, churn_report, funnel_report, top_customers
from graph.views import scored_count
from scrm.access import Principal
from scrm.web.api.deps import PagingDep, StoreDep, viewer
from scrm.web.api.models import DB_INT

__all__ = ["router"]

router = APIRouter(tags=["scores"])

#: the leaderboard's ``by`` -> graph.reports.top_customers's
_BY: dict[str, TopBy] = {"social": "social_value", "influence": "influence", "reach": "reach", "value": "clv"}


class RunPage(BaseModel):
    """One page of a list read from a score run."""

    run_id: int
    as_of: str
    currency: str
    weights: dict[str, float]
    total: int
    limit: int
    offset: int


class Ranked(BaseModel):
    rank: int
    customer_id: int
    name: str
    social_value: float
    points: dict[str, float]
    main: list[str]
    influence: float
    reach_direct: int
    reach_two_hop: int
    referral_reach: int
    community_id: int | None
    is_leader: bool
    is_bridge: bool
    clv_minor: int
    stage: str


class Leaderboard(RunPage):
    by: str
    community: int | None
    items: list[Ranked]


class ChurnWarning(BaseModel):
    customer_id: int
    name: str
    since: str
    reasons: list[Any]
    p_alive: float | None
    days_since_purchase: float | None
    clv_minor: int | None
    spent_minor: int | None
    stage: str | None


class ChurnPage(RunPage):
    items: list[ChurnWarning]


@router.get("/leaderboard", response_model=Leaderboard, summary="Customers ranked by a score")
def leaderboard(
    store: StoreDep,
    page: PagingDep,
    _caller: Annotated[Principal, viewer],
    by: Annotated[
        Literal["social", "influence", "reach", "value"],
        Query(description="social value, influence (PageRank), two-hop reach or lifetime value"),
    ] = "social",
    community: Annotated[int | None, Query(ge=0, le=DB_INT, description="only this community")] = None,
) -> Any:
    """The latest scores ranked by ``by``, each with what its social value is made of (as `scrm top`)."""
    run, rows = top_customers(
        store,
        by=_BY[by],
        community=community,
        limit=page.limit,
        offset=page.offset,
    )
    items = [{**row, "rank": page.offset + i} for i, row in enumerate(rows, 1)]
    total = scored_count(store, community=community)
    return {
        **run.as_dict(),
        "by": by,
        "community": community,
        **page.model_dump(),
        "total": total,
        "items": items,
    }


@router.get("/funnel", summary="The lifecycle funnel")
def funnel(store: StoreDep, _caller: Annotated[Principal, viewer]) -> dict[str, Any]:
    """Customers per lifecycle stage now, conversion between stages, the moves between them and the
    median days in each stage (as `scrm funnel`)."""
    return funnel_report(store)


@router.get("/churn", response_model=ChurnPage, summary="Open churn warnings")
def churn(store: StoreDep, page: PagingDep, _caller: Annotated[Principal, viewer]) -> Any:
    """Customers at risk of leaving, the most valuable first, with the reasons (as `scrm churn`)."""
    run, total, rows = churn_report(store, limit=page.limit, offset=page.offset)
    return {**run.as_dict(), **page.model_dump(), "total": total, "items": rows}
