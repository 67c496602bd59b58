"""The simulator's HTTP face: a Starlette app speaking WeChat's JSON wire format.

``/cgi-bin/...`` are WeChat's endpoints (errors as ``{"errcode": N, "errmsg": ...}`` with HTTP 200, as
WeChat answers them). ``/track/share_reads`` is the brand's share tracking (what its own web pages
record). ``/_sim/...`` controls the simulator: the request log, the clock, the orders export.
Every ``/cgi-bin`` and ``/track`` request is logged with ``access_token`` and ``secret`` redacted.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.wechat_sim.control import control_routes, json_response
from connectors.wechat_sim.errors import ApiError
from connectors.wechat_sim.messaging import Messaging
from connectors.wechat_sim.population import ORDER_HEADER
from connectors.wechat_sim.state import SimState

__all__ = ["build_app"]

Handler = Callable[[dict[str, str], Any], dict[str, Any]]


def _endpoints(state: SimState, msg: Messaging) -> dict[str, tuple[str, Handler]]:
    """WeChat path (after ``/cgi-bin/``) → (HTTP method, handler)."""

    def user_get(q: dict[str, str], _: Any) -> dict[str, Any]:
        return state.follower_page(q.get("next_openid") or None)

    def user_info(q: dict[str, str], _: Any) -> dict[str, Any]:
        return state.profile(state.follower_index(q.get("openid")), q.get("lang"))

    def update_remark(_: dict[str, str], body: Any) -> dict[str, Any]:
        i = state.follower_index(body.get("openid") if isinstance(body, dict) else None)
        remark = body.get("remark", "")
        if not isinstance(remark, str) or len(remark) > 30:
            raise ApiError(40035)
        state.remarks[i] = remark
        return {"errcode": 0, "errmsg": "ok"}

    def getidlist(_: dict[str, str], body: Any) -> dict[str, Any]:
        i = state.follower_index(body.get("openid") if isinstance(body, dict) else None)
        return {"tagid_list": state.user_tags(i)}

    def create_tag(_: dict[str, str], body: Any) -> dict[str, Any]:
        tag = body.get("tag") if isinstance(body, dict) else None
        return state.create_tag(tag.get("name") if isinstance(tag, dict) else None)

    def clear_quota(_: dict[str, str], body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or body.get("appid") != state.credentials.appid:
            raise ApiError(40013)
        state.clear_quota()
        return {"errcode": 0, "errmsg": "ok"}

    return {
        "user/get": ("GET", user_get),
        "user/info": ("GET", user_info),
        "user/info/batchget": ("POST", lambda q, b: state.batch_profiles(b)),
        "user/info/updateremark": ("POST", update_remark),
        "tags/create": ("POST", create_tag),
        "tags/get": ("GET", lambda q, b: state.tag_list()),
        "tags/members/batchtagging": ("POST", lambda q, b: state.tag_users(b, tag=True)),
        "tags/members/batchuntagging": ("POST", lambda q, b: state.tag_users(b, tag=False)),
        "user/tag/get": ("POST", lambda q, b: state.tag_members_page(b)),
        "tags/getidlist": ("POST", getidlist),
        "message/custom/send": ("POST", lambda q, b: msg.custom_send(b)),
        "message/template/send": ("POST", lambda q, b: msg.template_send(b)),
        "template/get_all_private_template": ("GET", lambda q, b: state.templates()),
        "message/mass/send": ("POST", lambda q, b: msg.mass_send(b, to_all=False)),
        "message/mass/sendall": ("POST", lambda q, b: msg.mass_send(b, to_all=True)),
        "message/mass/preview": ("POST", lambda q, b: msg.mass_preview(b)),
        "message/mass/get": ("POST", lambda q, b: msg.mass_get(b)),
        "qrcode/create": ("POST", lambda q, b: msg.create_qrcode(b)),
        "clear_quota": ("POST", clear_quota),
    }


def build_app(state: SimState, messaging: Messaging, *, orders_account: str = "demo") -> Starlette:
    """The ASGI app over ``state`` and ``messaging``."""
    endpoints = _endpoints(state, messaging)

    async def cgi(request: Request) -> Response:
        path = request.path_params["path"]
        query = dict(request.query_params)
        raw = await request.body()
        body: Any = None
        errcode = 0
        with state.lock:
            try:
                if raw:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = raw.decode("utf-8", "replace")
                        raise ApiError(47001) from None
                if path == "token":
                    result = state.issue_token(
                        query.get("grant_type"), query.get("appid"), query.get("secret")
                    )
                else:
                    method, handler = endpoints.get(path, ("", None))
                    state.check_token(query.get("access_token"))
                    if handler is None:
                        raise ApiError(48001)
                    if request.method != method:
                        raise ApiError(43001 if method == "GET" else 43002, f"require {method} method")
                    state.count_call(path)
                    if method == "POST" and body is None:
                        raise ApiError(44002)
                    result = handler(query, body)
            except ApiError as exc:
                result = exc.body()
                errcode = exc.errcode or 0
            state.record(request.method, "/cgi-bin/" + path, query, body, errcode)
        return json_response(result)

    async def share_reads(request: Request) -> Response:
        query = dict(request.query_params)
        with state.lock:
            reads = state.pop.share_reads
            visible = bisect.bisect_right(state.share_read_times, state.now())
            cursor = query.get("cursor") or ""
            try:
                limit = min(max(int(query.get("limit") or 1000), 1), 10_000)
            except ValueError:
                limit = 1000
            pos = bisect.bisect_right(state.share_read_ids, cursor, hi=visible) if cursor else 0
            chunk = reads[pos : min(pos + limit, visible)]
            result = {
                "reads": [r._asdict() for r in chunk],
                "next_cursor": chunk[-1].id if chunk else cursor,
                "has_more": pos + len(chunk) < visible,
            }
            state.record(request.method, "/track/share_reads", query, None, 0)
        return json_response(result)

    async def orders_csv(request: Request) -> Response:
        account = request.query_params.get("account") or orders_account
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(ORDER_HEADER)
        writer.writerows(state.pop.iter_orders(account=account, until=state.now()))
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8")

    return Starlette(
        routes=[
            Route("/cgi-bin/{path:path}", cgi, methods=["GET", "POST"]),
            Route("/track/share_reads", share_reads, methods=["GET"]),
            *control_routes(state),
            Route("/_sim/orders.csv", orders_csv, methods=["GET"]),
        ]
    )
