"""What customer search's trigram indexes (migration 0009) cost the bulk writers, and building them.

``.venv/bin/python bench/bench_search_writes.py`` (200,000 customers, SQLite and PostgreSQL) or
``--customers 1000000``, ``--backends sqlite``. On a fresh store at revision 0008 (no search index)
and at head (0009: SQLite FTS5 trigram tables kept by triggers, PostgreSQL GIN ``pg_trgm`` indexes),
it times the bulk insert of N customers and of their identities (an openid each, a unionid for half,
a phone for a third: :mod:`web_store`'s mix) through :func:`graph.snapshots.bulk_insert`, as the
syncs and ``bench_web``'s store write them, one transaction each. Then, on the 0008 store, the
upgrade to 0009 (building the indexes over the rows already there, as ``scrm init`` does on an
existing store); on the 0009 store, the first search after the writes (on SQLite it indexes the
rows written since the last search: :func:`scrm.search.catch_up`).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import psycopg
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from web_store import PG_URL, _names

from graph.snapshots import bulk_insert
from scrm.models import Customer, Identity
from scrm.purchases import utc_text
from scrm.queries import list_customers
from scrm.store import Store

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _rows(n: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    rng = np.random.default_rng(7)
    ids = list(range(1, n + 1))
    customers = [(i, name, NOW) for i, name in zip(ids, _names(n, rng), strict=True)]
    identities: list[tuple[Any, ...]] = [
        (i, "openid", "wxbench", f"obench{i:010d}", "wechat", "", NOW) for i in ids
    ]
    identities += [
        (i, "unionid", "", f"ubench{i:010d}", "wechat", "", NOW) for i in ids if rng.random() < 0.5
    ]
    identities += [(i, "phone", "", f"+86138{i:08d}", "", "", NOW) for i in ids if rng.random() < 0.33]
    return customers, identities


def _write(store: Store, customers: list[Any], identities: list[Any]) -> tuple[float, float]:
    sqlite = store.dialect == "sqlite"
    when = utc_text(NOW) if sqlite else NOW
    times = []
    for table, columns, rows in (
        (Customer.__table__, ("id", "display_name", "created_at"), customers),  # type: ignore[attr-defined]
        (
            Identity.__table__,
            ("customer_id", "kind", "scope", "value", "platform", "source", "created_at"),
            identities,
        ),  # type: ignore[attr-defined]
    ):
        start = time.perf_counter()
        with store.connect() as conn:
            bulk_insert(conn, table, columns, ((*r[:-1], when) for r in rows))
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def _store(backend: str, name: str, folder: Path) -> Store:
    if backend == "sqlite":
        return Store(f"sqlite:///{folder / name}.db")
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{name}"')
    return Store(f"{PG_URL}?options=-csearch_path%3D{name}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    customers, identities = _rows(args.customers)
    console = Console(width=140)
    table = Table(title=f"bulk writes with and without the search indexes: {args.customers:,} customers, "
                  f"{len(identities):,} identities")  # fmt: skip
    columns = ("backend", "schema", "customers s", "identities s", "identities/s", "upgrade to 0009 s",
               "first search s")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("backend", "schema") else "right")
    with TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            for revision in ("0008", "0009"):
                store = _store(backend, f"bench_search_{revision}", Path(tmp))
                store.upgrade(revision)
                c_s, i_s = _write(store, customers, identities)
                upgrade, first = "", ""
                if revision == "0009":
                    start = time.perf_counter()
                    total, _page = list_customers(store, search="obench0000012345")
                    first = f"{time.perf_counter() - start:.1f}"
                    assert total == 1
                if revision == "0008":
                    start = time.perf_counter()
                    store.upgrade("0009")
                    upgrade = f"{time.perf_counter() - start:.1f}"
                store.close()
                table.add_row(
                    backend,
                    revision,
                    f"{c_s:.1f}",
                    f"{i_s:.1f}",
                    f"{len(identities) / i_s:,.0f}",
                    upgrade,
                    first,
                )
                if backend == "postgresql":
                    with psycopg.connect(PG_URL, autocommit=True) as conn:
                        conn.execute(f'DROP SCHEMA IF EXISTS "bench_search_{revision}" CASCADE')
    console.print(table)


if __name__ == "__main__":
    main()
