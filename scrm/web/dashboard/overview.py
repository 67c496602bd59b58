"""``/overview``: followers, new and lost per day, interactions per day and the latest campaign runs."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from graph.overview import overview as overview_data
from scrm.web.dashboard.base import Ctx, page

__all__ = ["routes"]


@page()
def overview(ctx: Ctx) -> Response:
    """The overview page (``?days=`` 7 to 180, default 30)."""
    days = ctx.int_param("days", 30, 7, 180)
    data = overview_data(ctx.store, ctx.settings.scrm.tz, days=days)
    chart = {
        "days": [d["day"] for d in data["days"]],
        "series": {
            "new": [d["new"] for d in data["days"]],
            "lost": [d["lost"] for d in data["days"]],
            "interactions": [d["interactions"] for d in data["days"]],
        },
    }
    return ctx.render("overview.html", data=data, chart=chart, days=days)


routes = [Route("/overview", overview)]
