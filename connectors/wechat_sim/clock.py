"""The simulator's clock: a settable, thread-safe "now" that tests drive instead of sleeping."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

__all__ = ["SimClock"]


class SimClock:
    """A clock that only moves when told to.

    Parameters
    ----------
    at : datetime
        The starting time; must be timezone-aware.

    Examples
    --------
    >>> clock = SimClock(datetime(2026, 9, 1, tzinfo=UTC))
    >>> clock.advance(seconds=90).isoformat()
    '2026-09-01T00:01:30+00:00'
    >>> clock.timestamp()
    1788220890
    """

    def __init__(self, at: datetime) -> None:
        self._lock = threading.Lock()
        self._now = self._check(at)

    @staticmethod
    def _check(at: datetime) -> datetime:
        if at.tzinfo is None:
            raise ValueError("SimClock needs an aware datetime (e.g. tzinfo=UTC)")
        return at.astimezone(UTC)

    def now(self) -> datetime:
        """The current simulated time (aware, UTC)."""
        with self._lock:
            return self._now

    def timestamp(self) -> int:
        """The current simulated time in unix seconds."""
        with self._lock:
            return int(self._now.timestamp())

    def advance(
        self, seconds: float = 0.0, *, minutes: float = 0.0, hours: float = 0.0, days: float = 0.0
    ) -> datetime:
        """Move forward (a negative amount moves back) and return the new time."""
        step = timedelta(seconds=seconds, minutes=minutes, hours=hours, days=days)
        with self._lock:
            self._now = self._now + step
            return self._now

    def set(self, at: datetime) -> datetime:
        """Jump to ``at`` (aware) and return it."""
        value = self._check(at)
        with self._lock:
            self._now = value
            return value
