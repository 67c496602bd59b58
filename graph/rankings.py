"""A finished run's customers ranked by a score, held in memory: leaderboard pages at any depth.

A run never changes once it is ``done``, so its ranking by a score column (best first, ties by
customer id, as ``ORDER BY column DESC, customer_id``) is read once per process and kept, with each
customer's community alongside. A page of the leaderboard, of everyone or of one community, is then a
slice of an array (microseconds, however deep) and only that page's rows are read from the store.

Indexes on ``customer_score`` would serve the same pages, but every rescore would maintain them over a
million rows inserted in customer order: on SQLite that made the snapshot write four times slower
(bench/README.md, ``bench_web.py``). Reading a ranking costs about a second at a million customers,
once per process, score and run; at most :data:`MAX_IDS` ranked ids are kept (least recently used
rankings go first), 8 bytes per customer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy.engine import Connection

from graph.inputs import fetch_columns

__all__ = ["MAX_IDS", "Ranking", "clear", "ranking"]

#: how many ranked customers (summed over the rankings kept) the cache holds at most
MAX_IDS = 20_000_000


@dataclass(frozen=True)
class Ranking:
    """A run's customers, best first (``customer_ids``), and each one's community (-1: none)."""

    customer_ids: np.ndarray
    community_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.customer_ids)

    def _members(self, community: int | None) -> np.ndarray:
        if community is None:
            return self.customer_ids
        members: np.ndarray = self.customer_ids[self.community_ids == community]
        return members

    def page(self, *, community: int | None = None, limit: int = 20, offset: int = 0) -> list[int]:
        """The customer ids from the ``offset``-th on (``limit`` of them), of ``community`` if given."""
        return [int(i) for i in self._members(community)[offset : offset + limit]]

    def count(self, community: int | None = None) -> int:
        """How many customers are ranked (in ``community`` if given)."""
        if community is None:
            return len(self)
        return int(np.count_nonzero(self.community_ids == community))


_Key = tuple[str, int, str, str]
_cache: OrderedDict[_Key, Ranking] = OrderedDict()
_loading: dict[_Key, threading.Lock] = {}
_lock = threading.Lock()


def _read(conn: Connection, run_id: int, column: str) -> Ranking:
    customers, communities, values = fetch_columns(
        conn,
        [("customer_id", "int4"), ("COALESCE(community_id, -1)", "int4"), (column, "float8")],
        "FROM customer_score WHERE run_id = %s",
        (run_id,),
    )
    order = np.lexsort((customers, -values))  # value descending, then customer id ascending
    return Ranking(customers[order], communities[order])


def ranking(conn: Connection, run_id: int, finished_at: datetime | None, column: str) -> Ranking:
    """Run ``run_id``'s customers ranked by ``column`` (a numeric column of customer_score, never a
    value from a request), read on ``conn`` the first time and kept for the process.

    The run is known by the database's URL, its id and when it finished (a database made again at the
    same URL, as tests do, has runs with the same ids but other times).
    """
    stamp = finished_at.isoformat() if finished_at else ""
    key = (conn.engine.url.render_as_string(hide_password=True), run_id, stamp, column)
    with _lock:
        found = _kept(key)
        if found is not None:
            return found
        loading = _loading.setdefault(key, threading.Lock())
    with loading:  # concurrent first requests for this ranking wait for one read; others go on
        with _lock:
            found = _kept(key)
        if found is not None:
            return found
        ranked = _read(conn, run_id, column)
        with _lock:
            _cache[key] = ranked
            _loading.pop(key, None)
            while len(_cache) > 1 and sum(len(r) for r in _cache.values()) > MAX_IDS:
                _cache.popitem(last=False)
        return ranked


def _kept(key: _Key) -> Ranking | None:
    """The ranking kept under ``key`` (marked as the most recently used), if any; under ``_lock``."""
    found = _cache.get(key)
    if found is not None:
        _cache.move_to_end(key)
    return found


def clear() -> None:
    """Forget every ranking (they are rebuilt when next asked for)."""
    with _lock:
        _cache.clear()
