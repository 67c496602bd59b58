"""Run the WeCom simulator: uvicorn in a background thread (tests, demo, benchmarks)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from connectors.wechat_sim.clock import SimClock
from connectors.wechat_sim.serving import BackgroundServer
from connectors.wecom_sim.app import build_app
from connectors.wecom_sim.population import WeComPopulation
from connectors.wecom_sim.state import WeComCredentials, WeComState

__all__ = ["WeComSimulator"]


class WeComSimulator(BackgroundServer):
    """A running WeCom simulator over ``population``.

    Parameters
    ----------
    population : WeComPopulation
        What :func:`~connectors.wecom_sim.generate_wecom_population` made (its ``corpid`` is the one
        accepted).
    secret : str, optional
        The corpsecret it accepts; generated when not given.
    host, port : str, int
        Where to listen; port 0 picks a free port (see :attr:`base_url`).
    clock_at : "end", "start" or datetime
        Where the clock starts: the end of the generated period, its start, or a given time.
    per_minute : dict, optional
        Calls allowed per simulated minute per endpoint (e.g. ``{"externalcontact/groupchat/get": 5}``);
        more answer 45009.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        population: WeComPopulation,
        *,
        secret: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock_at: Literal["end", "start"] | datetime = "end",
        per_minute: dict[str, int | None] | None = None,
    ) -> None:
        self.population = population
        self.credentials = WeComCredentials.generate(population.corpid, secret)
        at = (
            {"end": population.end, "start": population.start}.get(clock_at)
            if isinstance(clock_at, str)
            else clock_at
        )
        assert at is not None
        self.clock = SimClock(at)
        self.state = WeComState(population, self.clock, self.credentials, per_minute=per_minute)
        super().__init__(build_app(self.state), host=host, port=port)

    @property
    def corpid(self) -> str:
        return self.credentials.corpid

    @property
    def secret(self) -> str:
        return self.credentials.secret

    @property
    def events_url(self) -> str:
        return self.base_url + "/track/wecom_events"

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Logged requests (time, method, path, query with tokens and secrets redacted, json, errcode)."""
        with self.state.lock:
            return [dict(e) for e in self.state.log[since:]]

    def reject_tokens(self, on: bool = True) -> None:
        """Make every token-checked call answer 40014 (to test bounded token refresh)."""
        with self.state.lock:
            self.state.rejecting = on
