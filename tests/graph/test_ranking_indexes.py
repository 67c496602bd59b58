"""The leaderboard's indexes on customer_score (migration 0009): partial on RANKED, used by the pages
that state it and by nothing that reads a whole run (SQLite's planner would read it in random order)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from graph.reports import top_customers
from graph.snapshots import run_t
from graph.views import scored_count
from scrm.models import RANKED
from scrm.store import Store

INDEXES = ("ix_customer_score_run_social", "ix_customer_score_run_community")
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _index_sql(store: Store) -> dict[str, str]:
    with store.connect() as conn:
        if store.dialect == "sqlite":
            query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'customer_score'"
        else:
            query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'customer_score'"
        return {name: sql for name, sql in conn.exec_driver_sql(query).all() if sql}


def test_the_ranking_indexes_are_partial_on_ranked(store: Store) -> None:
    found = _index_sql(store)
    for name in INDEXES:
        assert name in found, sorted(found)
        assert RANKED in found[name].replace("(", "").replace(")", ""), found[name]


def _scored(store: Store) -> None:
    """A finished run (no rows are needed for the plans)."""
    with store.connect() as conn:
        conn.execute(
            sa.insert(run_t).values(
                started_at=T0, finished_at=T0, as_of=T0, status="done", parameters="{}", summary="{}"
            )
        )


def _plans(store: Store, call: Callable[[], Any]) -> list[str]:
    """SQLite's plan of every statement on customer_score that ``call`` runs."""
    seen: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", grab)
    try:
        call()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", grab)
    plans = []
    with store.connect() as conn:
        for statement, parameters in seen:
            if "customer_score" in statement:
                rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
                plans.append(" / ".join(str(row[-1]) for row in rows))
    return plans


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'plans.db'}")
    store.upgrade()
    _scored(store)
    yield store
    store.close()


def test_leaderboard_pages_read_their_ids_from_the_ranking_index(sqlite_store: Store) -> None:
    plans = _plans(sqlite_store, lambda: top_customers(sqlite_store, limit=50, offset=100_000))
    assert any("COVERING INDEX ix_customer_score_run_social" in p for p in plans), plans
    plans = _plans(sqlite_store, lambda: top_customers(sqlite_store, community=3, limit=50))
    assert any("ix_customer_score_run_community" in p for p in plans), plans
    plans = _plans(sqlite_store, lambda: scored_count(sqlite_store, community=3))
    assert any("ix_customer_score_run_community" in p for p in plans), plans


def test_whole_run_reads_keep_the_primary_key(sqlite_store: Store) -> None:
    plans = _plans(sqlite_store, lambda: top_customers(sqlite_store, by="influence", limit=50))
    assert plans and not any("ix_customer_score_run" in p for p in plans), plans
    with sqlite_store.connect() as conn:
        for sql in (  # the previous snapshot; resolving churn warnings (graph.snapshots)
            "SELECT customer_id, stage, community_id FROM customer_score WHERE run_id = 1"
            " ORDER BY customer_id",
            "SELECT customer_id FROM customer_score WHERE run_id = 1 AND stage = 'at_risk'",
        ):
            plan = " / ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all())
            assert "ix_customer_score_run" not in plan, plan
