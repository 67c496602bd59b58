"""The WeCom simulator's HTTP face: a Starlette app speaking WeCom's JSON wire format.

``/cgi-bin/...`` are WeCom's endpoints (errors as ``{"errcode": N, "errmsg": ...}`` with HTTP 200, as
WeCom answers them). ``/track/wecom_events`` is what the corp's callback receiver recorded (contact
deletions by either side), as a JSON feed. ``/_sim/requests`` and ``/_sim/clock`` control the
simulator. Every ``/cgi-bin`` and ``/track`` request is logged with ``access_token`` and
``corpsecret`` redacted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.wechat_sim.control import control_routes, json_response
from connectors.wechat_sim.errors import ApiError
from connectors.wecom_sim.state import WeComState, error

__all__ = ["build_app"]

Handler = Callable[[dict[str, str], Any], dict[str, Any]]


def _endpoints(state: WeComState) -> dict[str, tuple[str, Handler]]:
    """WeCom path (after ``/cgi-bin/``) -> (HTTP method, handler)."""
    return {
        "user/simplelist": ("GET", lambda q, b: state.simplelist(q)),
        "user/list": ("GET", lambda q, b: state.simplelist(q)),
        "externalcontact/get_follow_user_list": ("GET", lambda q, b: state.follow_user_list()),
        "externalcontact/list": ("GET", lambda q, b: state.contact_list(q.get("userid"))),
        "externalcontact/get": ("GET", lambda q, b: state.contact_get(q.get("external_userid"))),
        "externalcontact/batch/get_by_user": ("POST", lambda q, b: state.batch_get_by_user(b)),
        "externalcontact/groupchat/list": ("POST", lambda q, b: state.groupchat_list(b)),
        "externalcontact/groupchat/get": ("POST", lambda q, b: state.groupchat_get(b)),
    }


def build_app(state: WeComState) -> Starlette:
    """The ASGI app over ``state``."""
    endpoints = _endpoints(state)

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
                        raise error(47001) from None
                if path == "gettoken":
                    result = state.issue_token(query.get("corpid"), query.get("corpsecret"))
                else:
                    method, handler = endpoints.get(path, ("", None))
                    state.check_token(query.get("access_token"))
                    if handler is None:
                        raise error(48001)
                    if request.method != method:
                        raise ApiError(43001 if method == "GET" else 43002, f"require {method} method")
                    state.count_call(path)
                    if method == "POST" and not isinstance(body, dict):
                        raise error(44002 if body is None else 47001)
                    result = handler(query, body)
            except ApiError as exc:
                result = exc.body()
                errcode = exc.errcode or 0
            state.record(request.method, "/cgi-bin/" + path, query, body, errcode)
        return json_response(result)

    async def events(request: Request) -> Response:
        query = dict(request.query_params)
        with state.lock:
            try:
                limit = min(max(int(query.get("limit") or 1000), 1), 10_000)
                result = state.events(query.get("cursor") or "", limit)
                errcode = 0
            except (ValueError, ApiError) as exc:
                result = {"error": f"bad request: {exc}"}
                errcode = 40058
            state.record(request.method, "/track/wecom_events", query, None, errcode)
        return json_response(result)

    return Starlette(
        routes=[
            Route("/cgi-bin/{path:path}", cgi, methods=["GET", "POST"]),
            Route("/track/wecom_events", events, methods=["GET"]),
            *control_routes(state),
        ]
    )
