"""Run the simulator: uvicorn in a background thread (tests, demo) or in the foreground (CLI)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from connectors.wechat_sim.app import build_app
from connectors.wechat_sim.clock import SimClock
from connectors.wechat_sim.messaging import Messaging
from connectors.wechat_sim.population import Action, Population
from connectors.wechat_sim.serving import BackgroundServer
from connectors.wechat_sim.state import Credentials, SimState

__all__ = ["SimulatorServer"]


class SimulatorServer(BackgroundServer):
    """A running WeChat simulator over ``population``.

    Parameters
    ----------
    population : Population
        What :func:`~connectors.wechat_sim.generate_population` made.
    appid, secret, token, encoding_aes_key : str, optional
        The credentials it accepts; generated when not given (see :attr:`credentials`).
    host, port : str, int
        Where to listen; port 0 picks a free port (see :attr:`base_url`).
    clock_at : "end", "start" or datetime
        Where the clock starts: the end of the activity period (a sync sees the final state), its start,
        or a given time.
    quotas, per_minute : dict, optional
        Override daily and per-minute call limits per endpoint (e.g. ``{"user/get": 3}``; None = no limit).
    orders_account : str
        The ``account`` column of ``/_sim/orders.csv``.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        population: Population,
        *,
        appid: str | None = None,
        secret: str | None = None,
        token: str | None = None,
        encoding_aes_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock_at: Literal["end", "start"] | datetime = "end",
        quotas: dict[str, int | None] | None = None,
        per_minute: dict[str, int | None] | None = None,
        orders_account: str = "demo",
    ) -> None:
        self.population = population
        self.credentials = Credentials.generate(appid, secret, token, encoding_aes_key)
        if clock_at == "end":
            at = population.end
        elif clock_at == "start":
            at = population.start
        else:
            at = clock_at
        self.clock = SimClock(at)
        self.state = SimState(population, self.clock, self.credentials, quotas=quotas, per_minute=per_minute)
        self.messaging = Messaging(self.state)
        app = build_app(self.state, self.messaging, orders_account=orders_account)
        super().__init__(app, host=host, port=port)
        self._acted = 0

    # ---- credentials and addresses -----------------------------------------------------------------
    @property
    def appid(self) -> str:
        return self.credentials.appid

    @property
    def secret(self) -> str:
        return self.credentials.secret

    @property
    def token(self) -> str:
        """The callback token (signs pushes), not an access_token."""
        return self.credentials.token

    @property
    def encoding_aes_key(self) -> str:
        return self.credentials.encoding_aes_key

    @property
    def api_base_url(self) -> str:
        """``base_url + "/cgi-bin/"``: wechatpy's ``API_BASE_URL``."""
        return self.base_url + "/cgi-bin/"

    @property
    def share_reads_url(self) -> str:
        return self.base_url + "/track/share_reads"

    # ---- inspection and control --------------------------------------------------------------------
    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Logged requests (time, method, path, query with access_token redacted, json, errcode)."""
        with self.state.lock:
            return [dict(e) for e in self.state.log[since:]]

    def save_log(self, path: str | Path) -> Path:
        """Write the request log as JSON Lines."""
        path = Path(path)
        with path.open("w", encoding="utf-8") as out:
            for entry in self.requests():
                out.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return path

    def reject_tokens(self, on: bool = True) -> None:
        """Make every token-checked call answer 40001 (to test bounded token refresh)."""
        with self.state.lock:
            self.state.rejecting = on

    def actions(
        self, since: datetime | int | None = None, until: datetime | int | None = None
    ) -> list[Action]:
        """The generated follower actions with ``since <= time < until``."""

        def ts(v: datetime | int | None) -> int | None:
            return int(v.timestamp()) if isinstance(v, datetime) else v

        return self.population.actions_between(ts(since), ts(until))

    def act(self, openid: str, kind: str, *, content: str = "", key: str = "") -> Action:
        """Make follower ``openid`` act now (``text``, ``click`` or ``scan``) and return the action.

        The action opens the customer-service window as a generated one does; push it to a bot with
        :func:`~connectors.wechat_sim.push_actions`.
        """
        if kind not in ("text", "click", "scan"):
            raise ValueError(f"kind must be text, click or scan, not {kind!r}")
        with self.state.lock:
            self.messaging.record_action(openid, kind)
            self._acted += 1
            msgid = 25_000_000_000_000_000 + self._acted if kind == "text" else 0
            return Action(self.clock.timestamp(), openid, kind, content=content, key=key, msgid=msgid)

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Messages delivered so far (custom, template, mass, preview), in order."""
        with self.state.lock:
            return list(self.messaging.sent)
