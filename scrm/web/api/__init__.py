"""The REST API under ``/api/v1``: a FastAPI app mounted in the scrm web app.

FastAPI validates every request body and query against its declared model (a clear 422 otherwise) and
publishes the OpenAPI description at ``/api/v1/openapi.json`` (browsable at ``/api/v1/docs``). One module
per resource adds its router here; :mod:`scrm.web.api.deps` has what they share: the caller's
:class:`~scrm.access.Principal` from the ``Authorization: Bearer`` token, the role checks, the store,
pagination and the error answers.
"""

from __future__ import annotations

from fastapi import FastAPI

from scrm.config import Settings
from scrm.store import Store
from scrm.web.api import admin, campaigns, communities, customers, purchases, rules, scores, segments
from scrm.web.api.deps import install_error_handlers

__all__ = ["create_api"]

ROUTERS = [
    customers.router,
    scores.router,
    communities.router,
    rules.router,
    purchases.router,
    admin.router,
    segments.router,
    campaigns.router,
]


def create_api(settings: Settings, store: Store) -> FastAPI:
    """The API app for ``settings`` on ``store`` (mounted at ``/api/v1`` by ``create_app``)."""
    api = FastAPI(
        title="scrm API",
        version="1",
        description=(
            "Social CRM: customers and their identities, scores and leaderboards, communities, the "
            "lifecycle funnel, segments, campaigns, reply rules and purchases. Authenticate with "
            "`Authorization: Bearer <token>` (create one with `scrm token create --name NAME --role ROLE`)."
        ),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    api.state.settings = settings
    api.state.store = store
    install_error_handlers(api)
    for router in ROUTERS:
        api.include_router(router)
    return api
