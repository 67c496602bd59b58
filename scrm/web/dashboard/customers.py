"""``/customers``: search and list, and one customer's 360° page with a timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from graph.reports import explain_customer
from graph.views import customer_view
from scrm.errors import NoScores, NotFound
from scrm.queries import Sort, list_customers
from scrm.web.dashboard.base import Ctx, page, pages

__all__ = ["routes"]

SORTS: tuple[Sort, ...] = ("id", "spent", "recent", "orders")


@page()
def customers(ctx: Ctx) -> Response:
    """Customers matching ``?q=`` (names and keys), sorted by ``?sort=``, a page at a time."""
    query = ctx.field("q")[:200]
    sort: Sort = "id"
    for choice in SORTS:
        if ctx.field("sort") == choice:
            sort = choice
    size = ctx.settings.web.page_size
    number = ctx.int_param("page", 1, 1, 100_000)
    total, rows = list_customers(
        ctx.store, search=query or None, sort=sort, limit=size, offset=(number - 1) * size
    )
    pager = pages(total, size, number)
    return ctx.render("customers.html", rows=rows, q=query, sort=sort, pages=pager, sorts=SORTS)


def _timeline(view: dict[str, Any]) -> list[dict[str, Any]]:
    """Everything that happened to the customer, newest first: ``{"at", "kind", ...}``."""
    events: list[dict[str, Any]] = []
    for f in view["follows"]:
        events.append({"at": f["subscribed_at"], "kind": "follow", "item": f})
        if f["unsubscribed_at"]:
            events.append({"at": f["unsubscribed_at"], "kind": "unfollow", "item": f})
    events += [{"at": x["occurred_at"], "kind": "interaction", "item": x} for x in view["interactions"]]
    events += [{"at": p["occurred_at"], "kind": "purchase", "item": p} for p in view["purchases"]]
    events += [{"at": s["changed_at"], "kind": "stage", "item": s} for s in view.get("stage_history", [])]
    events += [
        {"at": d["sent_at"] or d["due_at"], "kind": "delivery", "item": d} for d in view.get("deliveries", [])
    ]
    events += [{"at": mg["created_at"], "kind": "merge", "item": mg} for mg in view["merges"]]
    return sorted((e for e in events if isinstance(e["at"], datetime)), key=lambda e: e["at"], reverse=True)


@page()
def customer(ctx: Ctx) -> Response:
    """One customer: identities, tags, acquisition, scores explained, purchases and the timeline."""
    customer_id = ctx.path_id("customer_id")
    view = customer_view(ctx.store, customer_id, limit=50)
    try:
        explained: dict[str, Any] | None = explain_customer(ctx.store, int(view["id"]))
    except (NoScores, NotFound):  # not scored yet (new since the last run, or no run at all)
        explained = None
    return ctx.render("customer.html", c=view, x=explained, timeline=_timeline(view))


routes = [Route("/customers", customers), Route("/customers/{customer_id:int}", customer)]
