"""The dashboard: server-rendered pages for people, in English and Chinese, mounted at ``/``.

Pages (one module per area): ``/login`` and ``/logout`` (:mod:`.auth`); ``/overview``
(:mod:`.overview`); ``/leaderboard`` with each score explained and ``/funnel`` (:mod:`.scores`);
``/communities`` and its map's data (:mod:`.communities`); ``/customers`` and the 360° page
``/customers/{id}`` (:mod:`.customers`); ``/campaigns`` (:mod:`.campaigns`). Jinja2 templates in
``templates/web/``; htmx and Apache ECharts are served from ``/static`` (``scrm/web/static/``), nothing
from other hosts. :mod:`.base` has the session, CSRF and role checks every page goes through.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from scrm.config import Settings
from scrm.store import Store
from scrm.web.dashboard import auth, campaigns, communities, customers, overview, scores
from scrm.web.dashboard.base import Dashboard

__all__ = ["STATIC", "create_dashboard"]

STATIC = Path(__file__).resolve().parents[1] / "static"


async def _home(_request: object) -> RedirectResponse:
    return RedirectResponse("/overview", status_code=303)


def create_dashboard(settings: Settings, store: Store) -> Starlette:
    """The dashboard app for ``settings`` on ``store`` (mounted at ``/`` by ``create_app``, last)."""
    routes: list[BaseRoute] = [
        Route("/", _home),
        *auth.routes,
        *overview.routes,
        *scores.routes,
        *communities.routes,
        *customers.routes,
        *campaigns.routes,
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.dashboard = Dashboard(settings, store)
    return app
