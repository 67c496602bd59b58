"""The Mastodon simulator's HTTP API (Starlette): the endpoints the connector reads, in Mastodon's shapes.

* ``GET /api/v1/accounts/verify_credentials``: the brand account;
* ``GET /api/v1/accounts/{id}/followers``: newest follow first, ``limit`` (default 40, at most 80),
  ``max_id`` / ``since_id`` / ``min_id`` on the follow relationship's id, a ``Link`` header with
  ``rel="next"`` (``max_id``) and ``rel="prev"`` (``min_id``) like Mastodon's;
* ``GET /api/v1/accounts?id[]=...``: several accounts (at most 40), as Mastodon 4.3;
* ``GET /api/v1/timelines/public``: the instance's statuses up to the clock, newest first, paged the
  same way on status ids (``min_id``: the ones right after it).

Every call needs ``Authorization: Bearer <token>`` (401 ``{"error": ...}`` otherwise), answers
``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (ISO time; a window of real seconds) and 429
``{"error": "Too many requests"}`` past the limit. ``fail_next`` makes the next calls answer 503.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors.mastodon_sim.population import SimAccount, SimPopulation, SimStatus
from connectors.wechat_sim.clock import SimClock

__all__ = ["SimState", "build_app"]


@dataclass
class SimState:
    population: SimPopulation
    clock: SimClock
    token: str = "sim-token"
    rate_limit: int = 300
    rate_window: float = 300.0
    failures: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _window_start: float = 0.0
    _used: int = 0

    def admit(self) -> tuple[bool, dict[str, str]]:
        """Count one call against the rate limit; (allowed, headers)."""
        with self.lock:
            now = time.time()
            if now - self._window_start >= self.rate_window:
                self._window_start, self._used = now, 0
            self._used += 1
            reset = datetime.fromtimestamp(self._window_start + self.rate_window, UTC)
            remaining = max(self.rate_limit - self._used, 0)
            headers = {
                "X-RateLimit-Limit": str(self.rate_limit),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": reset.isoformat().replace("+00:00", "Z"),
            }
            return self._used <= self.rate_limit, headers


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def account_json(domain: str, a: SimAccount) -> dict[str, Any]:
    return {
        "id": a.id,
        "username": a.username,
        "acct": a.username,
        "display_name": a.display_name,
        "locked": False,
        "bot": False,
        "created_at": _iso(a.created_at),
        "note": "",
        "url": f"https://{domain}/@{a.username}",
        "avatar": "",
        "header": "",
        "followers_count": 0,
        "following_count": 0,
        "statuses_count": 0,
        "emojis": [],
        "fields": [
            {"name": n, "value": v, "verified_at": _iso(a.created_at) if ok else None}
            for n, v, ok in a.fields
        ],
    }


def _status_json(state: SimState, s: SimStatus, by_id: dict[str, SimStatus]) -> dict[str, Any]:
    pop = state.population
    people = pop.accounts
    reblog = by_id.get(s.reblog_of) if s.reblog_of else None
    return {
        "id": s.id,
        "uri": f"https://{pop.domain}/users/{people[s.account_id].username}/statuses/{s.id}",
        "url": f"https://{pop.domain}/@{people[s.account_id].username}/{s.id}",
        "created_at": _iso(s.created_at),
        "account": account_json(pop.domain, people[s.account_id]),
        "content": f"<p>{s.content}</p>",
        "visibility": "public",
        "sensitive": False,
        "spoiler_text": "",
        "in_reply_to_id": s.in_reply_to_id,
        "in_reply_to_account_id": s.in_reply_to_account_id,
        "mentions": [
            {"id": m, "username": people[m].username, "acct": people[m].username, "url": ""}
            for m in s.mentions
        ],
        "reblog": _status_json(state, reblog, by_id) if reblog else None,
        "media_attachments": [],
        "tags": [],
        "emojis": [],
        "reblogs_count": 0,
        "favourites_count": 0,
        "replies_count": 0,
    }


def _page(items: list[tuple[int, Any]], params: Any, limit: int) -> list[tuple[int, Any]]:
    """Mastodon's paging over (id, item) in ascending id order: newest first, or right after min_id."""
    max_id = int(params["max_id"]) if params.get("max_id") else None
    since_id = int(params["since_id"]) if params.get("since_id") else None
    min_id = int(params["min_id"]) if params.get("min_id") else None
    chosen = [
        (i, x)
        for i, x in items
        if (max_id is None or i < max_id)
        and (since_id is None or i > since_id)
        and (min_id is None or i > min_id)
    ]
    chosen = chosen[:limit] if min_id is not None else chosen[-limit:]
    return list(reversed(chosen))


def _link(request: Request, page: list[tuple[int, Any]]) -> dict[str, str]:
    if not page:
        return {}
    base = str(request.url.replace(query=""))
    keep = {k: v for k, v in request.query_params.items() if k in ("limit", "local")}
    next_url = f"{base}?{urlencode({**keep, 'max_id': page[-1][0]})}"
    prev_url = f"{base}?{urlencode({**keep, 'min_id': page[0][0]})}"
    return {"Link": f'<{next_url}>; rel="next", <{prev_url}>; rel="prev"'}


def build_app(state: SimState) -> Starlette:
    pop = state.population
    by_status = {s.id: s for s in pop.statuses}

    def guard(request: Request) -> tuple[JSONResponse | None, dict[str, str]]:
        with state.lock:
            state.log.append({"path": request.url.path, "query": str(request.url.query)})
            failing = state.failures > 0
            if failing:
                state.failures -= 1
        if request.headers.get("authorization") != f"Bearer {state.token}":
            return JSONResponse({"error": "The access token is invalid"}, 401), {}
        allowed, headers = state.admit()
        if not allowed:
            return JSONResponse({"error": "Too many requests"}, 429, headers=headers), headers
        if failing:
            return JSONResponse({"error": "Service unavailable"}, 503, headers=headers), headers
        return None, headers

    def limit_of(request: Request, default: int, most: int) -> int:
        try:
            return max(1, min(int(request.query_params.get("limit", default)), most))
        except ValueError:
            return default

    async def verify(request: Request) -> JSONResponse:
        refused, headers = guard(request)
        body = {**account_json(pop.domain, pop.brand), "followers_count": len(pop.follows)}
        return refused or JSONResponse(body, headers=headers)

    async def followers(request: Request) -> JSONResponse:
        refused, headers = guard(request)
        if refused:
            return refused
        if request.path_params["id"] != pop.brand.id:
            return JSONResponse({"error": "Record not found"}, 404, headers=headers)
        page = _page(pop.follows, request.query_params, limit_of(request, 40, 80))
        body = [account_json(pop.domain, pop.accounts[a]) for _, a in page]
        return JSONResponse(body, headers={**headers, **_link(request, page)})

    async def accounts(request: Request) -> JSONResponse:
        refused, headers = guard(request)
        if refused:
            return refused
        ids = request.query_params.getlist("id[]")
        if len(ids) > 40:
            return JSONResponse({"error": "Too many ids (at most 40)"}, 422, headers=headers)
        found = [pop.accounts[i] for i in ids if i in pop.accounts]
        return JSONResponse([account_json(pop.domain, a) for a in found], headers=headers)

    async def public(request: Request) -> JSONResponse:
        refused, headers = guard(request)
        if refused:
            return refused
        now = state.clock.now()
        visible = [(int(s.id), s) for s in pop.statuses if s.created_at <= now]
        page = _page(visible, request.query_params, limit_of(request, 20, 40))
        body = [_status_json(state, s, by_status) for _, s in page]
        return JSONResponse(body, headers={**headers, **_link(request, page)})

    return Starlette(
        routes=[
            Route("/api/v1/accounts/verify_credentials", verify),
            Route("/api/v1/accounts/{id}/followers", followers),
            Route("/api/v1/accounts", accounts),
            Route("/api/v1/timelines/public", public),
        ]
    )
