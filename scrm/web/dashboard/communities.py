"""``/communities``: the communities with their leaders and bridges, and the community map."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from graph.community_map import community_map
from graph.reports import community_report
from graph.views import community_count
from scrm.web.dashboard.base import Ctx, page, pages

__all__ = ["routes"]


@page()
def communities(ctx: Ctx) -> Response:
    """The map (drawn by the browser from ``/communities/map.json``) and the list, largest first."""
    size = ctx.settings.web.page_size
    pager = pages(community_count(ctx.store), size, ctx.int_param("page", 1, 1, 1_000_000))
    run, rows = community_report(ctx.store, limit=size, offset=pager["offset"])
    return ctx.render("communities.html", run=run, rows=rows, pages=pager)


@page()
def map_data(ctx: Ctx) -> Response:
    """The map's nodes and ties as JSON (``[web] map_nodes`` customers at most)."""
    data = community_map(ctx.store, nodes=ctx.settings.web.map_nodes)
    return JSONResponse(data, headers=ctx.headers)


routes = [Route("/communities", communities), Route("/communities/map.json", map_data)]
