"""What every simulator serves besides its platform's API: JSON answers, its request log, its clock.

``/_sim/requests`` (GET, ``?since=N``) returns the request log; ``/_sim/clock`` (GET, or POST
``{"advance": seconds}`` / ``{"set": iso time}``) reads or moves the simulated clock. Shared by the
WeChat and WeCom simulators.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.wechat_sim.clock import SimClock

__all__ = ["SimulatedState", "control_routes", "json_response"]


class SimulatedState(Protocol):
    """What the control routes need of a simulator's state."""

    @property
    def lock(self) -> AbstractContextManager[Any]: ...

    @property
    def log(self) -> list[dict[str, Any]]: ...

    @property
    def clock(self) -> SimClock: ...


def json_response(data: Any) -> Response:
    """A compact UTF-8 JSON answer, as the platforms send."""
    return Response(
        json.dumps(data, ensure_ascii=False, separators=(",", ":")), media_type="application/json"
    )


def control_routes(state: SimulatedState) -> list[Route]:
    """``/_sim/requests`` and ``/_sim/clock`` over ``state``."""

    async def sim_requests(request: Request) -> Response:
        try:
            since = int(request.query_params.get("since") or 0)
        except ValueError:
            since = 0
        with state.lock:
            return json_response({"requests": state.log[since:]})

    async def sim_clock(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = json.loads(await request.body() or b"{}")
                if "advance" in body:
                    state.clock.advance(seconds=float(body["advance"]))
                elif "set" in body:
                    state.clock.set(datetime.fromisoformat(body["set"]))
            except (ValueError, TypeError) as exc:
                return json_response({"error": f"bad clock request: {exc}"})
        now = state.clock.now()
        return json_response({"now": now.isoformat(), "timestamp": int(now.timestamp())})

    return [
        Route("/_sim/requests", sim_requests, methods=["GET"]),
        Route("/_sim/clock", sim_clock, methods=["GET", "POST"]),
    ]
