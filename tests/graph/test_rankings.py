"""Leaderboard pages from the rankings held in memory (graph.rankings), against the store's own ORDER BY,
on SQLite and PostgreSQL: every score, every community, deep pages, ties, a new run, a database made
again at the same URL."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from graph import rankings
from graph.reports import TOP_BY, TopBy, top_customers
from graph.snapshots import (
    SCORE_COLUMNS,
    CommunityRow,
    Previous,
    SnapshotRows,
    previous_snapshot,
    start_run,
    write_snapshot,
)
from graph.views import scored_count
from scrm.models import Customer
from scrm.store import Store

T0 = datetime(2026, 11, 1, tzinfo=UTC)
N = 240


def _customers(store: Store, n: int) -> None:
    with store.connect() as conn:
        conn.execute(
            sa.insert(Customer.__table__),  # type: ignore[attr-defined]
            [{"id": i, "display_name": f"c{i}", "created_at": T0} for i in range(1, n + 1)],
        )


class _Reasons(Sequence[Sequence[str]]):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: Any) -> Any:
        return ["test"]


def _run(store: Store, seed: int, *, n: int = N, when: datetime = T0) -> int:
    """A finished run of ``n`` customers with many ties (scores on a coarse grid), 6 communities."""
    rng = np.random.default_rng(seed)
    grid = lambda high: rng.integers(0, high, n)  # noqa: E731 - a few distinct values: ties
    scores: dict[str, np.ndarray] = {name: np.zeros(n) for name in SCORE_COLUMNS}
    scores.update(
        influence=grid(20) / 20.0,
        reach_two_hop=grid(15),
        clv_minor=grid(12) * 1000,
        social_value=grid(30) / 3.0,
        community_id=np.where(rng.random(n) < 0.1, -1, grid(6)),  # some in no community
        is_leader=np.zeros(n, bool),
        is_bridge=np.zeros(n, bool),
        rfm=np.full(n, "111", dtype=object),
        stage=np.full(n, "active", dtype=object),
    )
    integers = ("reach_direct", "referral_reach", "frequency", "monetary_minor", "reach_two_hop", "clv_minor")
    for name in integers:
        scores[name] = scores[name].astype(np.int64)
    ids = np.arange(1, n + 1, dtype=np.int64)
    rows = SnapshotRows(
        ids, scores, [CommunityRow(c, 1, 0, 0.0, [], "") for c in range(6)], scores["stage"], _Reasons(n),
        np.zeros(n, bool),
    )  # fmt: skip
    with store.connect() as conn:
        previous: Previous = previous_snapshot(conn)
    run_id = start_run(store, as_of=when, parameters={"scoring": {"weights": {"influence": 1.0}}})
    write_snapshot(store, run_id, rows, as_of=when, previous=previous, summary={"customers": n})
    return run_id


def _expected(store: Store, run_id: int, column: str, community: int | None) -> list[int]:
    """The store's own ranking: ORDER BY column DESC, customer_id."""
    where = "" if community is None else f"AND community_id = {int(community)}"
    sql = f"SELECT customer_id FROM customer_score WHERE run_id = :r {where}"
    sql += f" ORDER BY {column} DESC, customer_id"
    with store.connect() as conn:
        return [int(i) for i in conn.execute(sa.text(sql), {"r": run_id}).scalars()]


def _paged(store: Store, by: TopBy, community: int | None, size: int) -> list[int]:
    got: list[int] = []
    while True:
        _run_info, rows = top_customers(store, by=by, community=community, limit=size, offset=len(got))
        got += [row["customer_id"] for row in rows]
        if len(rows) < size:
            return got


@pytest.fixture
def scored(store: Store) -> Store:
    _customers(store, N)
    _run(store, seed=1)
    return store


@pytest.mark.parametrize("by", list(TOP_BY))
def test_pages_follow_the_stores_order_for_every_score_and_community(scored: Store, by: TopBy) -> None:
    run_id = 1
    for community in (None, 0, 3, 5, 99):
        expected = _expected(scored, run_id, TOP_BY[by], community)
        assert _paged(scored, by, community, 7) == expected
        assert scored_count(scored, community=community) == len(expected)
    deep = top_customers(scored, by=by, limit=5, offset=N - 3)[1]
    assert [r["customer_id"] for r in deep] == _expected(scored, run_id, TOP_BY[by], None)[-3:]
    assert top_customers(scored, by=by, limit=5, offset=N + 10)[1] == []


def test_a_new_run_is_ranked_afresh(scored: Store) -> None:
    first = _paged(scored, "social_value", None, 50)
    run_id = _run(scored, seed=2, when=T0 + timedelta(days=7))
    run, rows = top_customers(scored, limit=N)
    assert run.id == run_id
    again = [r["customer_id"] for r in rows]
    assert again == _expected(scored, run_id, "social_value", None) and again != first


def test_a_database_made_again_at_the_same_url_is_not_read_from_memory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'again.db'}"
    orders = []
    for seed in (3, 4):
        (tmp_path / "again.db").unlink(missing_ok=True)
        store = Store(url)
        store.upgrade()
        _customers(store, N)
        run_id = _run(store, seed=seed, when=T0 + timedelta(seconds=seed))
        assert run_id == 1
        got = _paged(store, "influence", None, 100)
        assert got == _expected(store, run_id, "influence", None)
        orders.append(got)
        store.close()
    assert orders[0] != orders[1]


def test_concurrent_first_requests_read_the_ranking_once(
    scored: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    real = rankings._read

    def counted(conn: Any, run_id: int, column: str) -> rankings.Ranking:
        reads.append(run_id)
        return real(conn, run_id, column)

    rankings.clear()
    monkeypatch.setattr(rankings, "_read", counted)
    with ThreadPoolExecutor(4) as pool:
        pages = list(pool.map(lambda offset: _ids(scored, offset), [0, 0, 50, 100]))
    assert reads == [1]
    expected = _expected(scored, 1, "reach_two_hop", None)
    assert pages == [expected[0:50], expected[0:50], expected[50:100], expected[100:150]]


def _ids(store: Store, offset: int) -> list[int]:
    return [r["customer_id"] for r in top_customers(store, by="reach", limit=50, offset=offset)[1]]
