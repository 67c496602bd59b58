"""``/leaderboard`` (influencers, each score explained) and ``/funnel`` (lifecycle and churn warnings)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from graph.lifecycle import STAGES
from graph.reports import (
    COMPONENTS,
    TOP_BY,
    churn_report,
    explain_customer,
    funnel_report,
    top_customers,
)
from graph.views import scored_count
from scrm.web.dashboard.base import Ctx, page, pages

__all__ = ["routes"]


@page()
def leaderboard(ctx: Ctx) -> Response:
    """The leaderboard, ranked by ``?by=`` (social value, influence, CLV, reach), a page at a time."""
    by = ctx.field("by") or "social_value"
    if by not in TOP_BY:
        by = "social_value"
    community = ctx.int_param("community", -1, -1)
    where = None if community < 0 else community
    size = ctx.settings.web.page_size
    number = ctx.int_param("page", 1, 1, 1_000_000)
    run, rows = top_customers(ctx.store, by=by, community=where, limit=size, offset=(number - 1) * size)  # type: ignore[arg-type]
    everyone = run.summary.get("customers")  # counted by the run: no count over a million rows per page
    total = (
        everyone if where is None and isinstance(everyone, int) else scored_count(ctx.store, community=where)
    )
    pager = pages(total, size, number)
    if pager["number"] != number:  # past the last page: show the last
        run, rows = top_customers(ctx.store, by=by, community=where, limit=size, offset=pager["offset"])  # type: ignore[arg-type]
    return ctx.render(
        "leaderboard.html",
        run=run,
        rows=rows,
        by=by,
        community=where,
        pages=pager,
        components=list(COMPONENTS),
    )


@page()
def explain(ctx: Ctx) -> Response:
    """Why one customer scores what they score (a fragment for the leaderboard, or a page)."""
    customer_id = ctx.path_id("customer_id")
    data = explain_customer(ctx.store, customer_id)
    template = "fragments/explain.html" if ctx.htmx else "explain.html"
    return ctx.render(template, x=data)


@page()
def funnel(ctx: Ctx) -> Response:
    """The lifecycle funnel with conversion rates, and the open churn warnings (most valuable first).

    The funnel and the first pages of warnings are kept with the score run (:mod:`graph.funnels`)."""
    data = funnel_report(ctx.store)
    size = ctx.settings.web.page_size
    number = ctx.int_param("page", 1, 1)
    run, total, warnings = churn_report(ctx.store, limit=size, offset=(number - 1) * size)
    pager = pages(total, size, number)
    return ctx.render("funnel.html", data=data, run=run, warnings=warnings, pages=pager, stages=STAGES)


routes = [
    Route("/leaderboard", leaderboard),
    Route("/leaderboard/explain/{customer_id:int}", explain),
    Route("/funnel", funnel),
]
