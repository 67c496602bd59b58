"""``/overview``: followers, new and lost per day, interactions per day, campaigns active and running.

The follower and interaction figures read every follow of the store (a few hundred milliseconds at a
million followers), so a worker keeps them for a minute (:data:`KEEP_SECONDS`); the campaigns are
read on every request.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from campaigns import library
from graph.overview import campaign_runs
from graph.overview import overview as overview_data
from scrm.web.dashboard.base import Ctx, page

__all__ = ["KEEP_SECONDS", "routes"]

KEEP_SECONDS = 60.0


def _figures(ctx: Ctx, days: int) -> dict[str, Any]:
    key = ("overview", days)
    now = time.monotonic()
    kept = ctx.dash.kept.get(key)
    if kept is not None and now - kept[0] < KEEP_SECONDS:
        return dict(kept[1])
    data = overview_data(ctx.store, ctx.settings.scrm.tz, days=days)
    ctx.dash.kept[key] = (now, data)
    return data


@page()
def overview(ctx: Ctx) -> Response:
    """The overview page (``?days=`` 7 to 180, default 30)."""
    days = ctx.int_param("days", 30, 7, 180)
    data = _figures(ctx, days)
    runs = campaign_runs(ctx.store)  # not kept: a run just started shows at once
    active = [
        c
        for c in library.list_campaigns(ctx.store, ctx.settings)
        if (c.schedule or c.trigger) and not c.paused and not c.error
    ]
    chart = {
        "days": [d["day"] for d in data["days"]],
        "series": {
            "new": [d["new"] for d in data["days"]],
            "lost": [d["lost"] for d in data["days"]],
            "interactions": [d["interactions"] for d in data["days"]],
        },
    }
    sending = sum(1 for r in runs if r["status"] == "sending")
    return ctx.render(
        "overview.html", data=data, chart=chart, days=days, active=active, runs=runs, sending=sending
    )


routes = [Route("/overview", overview)]
