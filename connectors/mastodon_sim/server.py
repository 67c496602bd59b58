""":class:`MastodonSimServer`: the simulator's app in a background thread, with handles for tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.mastodon_sim.app import SimState, build_app
from connectors.mastodon_sim.population import SimPopulation
from connectors.wechat_sim.clock import SimClock
from connectors.wechat_sim.serving import BackgroundServer

__all__ = ["MastodonSimServer"]


class MastodonSimServer(BackgroundServer):
    """Serve ``population`` on 127.0.0.1; the clock starts at ``at`` (default: after the last post)."""

    def __init__(
        self,
        population: SimPopulation,
        *,
        at: datetime | None = None,
        token: str = "sim-token",
        rate_limit: int = 300,
        rate_window: float = 300.0,
        port: int = 0,
    ) -> None:
        self.clock = SimClock(at or population.now)
        self.state = SimState(population, self.clock, token, rate_limit, rate_window)
        super().__init__(build_app(self.state), port=port)

    @property
    def token(self) -> str:
        return self.state.token

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """The request log (path and query of each call), from index ``since``."""
        with self.state.lock:
            return list(self.state.log[since:])

    def fail_next(self, calls: int) -> None:
        """Answer the next ``calls`` requests with 503 (a restarting instance)."""
        with self.state.lock:
            self.state.failures = calls

    def unfollow(self, account_id: str) -> None:
        """``account_id`` stops following the brand."""
        pop = self.state.population
        pop.follows[:] = [(i, a) for i, a in pop.follows if a != account_id]

    def follow(self, account_id: str) -> None:
        """``account_id`` follows the brand (a new follow relationship, newest)."""
        pop = self.state.population
        next_id = max((i for i, _ in pop.follows), default=50_000) + 1
        pop.follows.append((next_id, account_id))
