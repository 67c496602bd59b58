"""Benchmark merges with their moved-row records, and unmerges, on SQLite and PostgreSQL.

It creates PAIRS pairs of customers (A known by a phone, B by an email; B with PURCHASES purchases,
INTERACTIONS interactions and a tag), then imports one batch of records each carrying both keys
(``resolve``: PAIRS automatic merges, each recording the rows it moved), then undoes every merge.
Prints a table: seconds for the batch of merges, per merge, rows recorded, seconds per unmerge.

    .venv/bin/python bench/bench_merges.py [--pairs 500] [--purchases 10] [--interactions 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import sqlalchemy as sa

from scrm.identity import resolve
from scrm.merges import unmerge
from scrm.models import CustomerMerge, CustomerTag, Interaction, MergeMovedRow, Purchase, Tag
from scrm.store import Store

PG = os.environ.get("SCRM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 5, 1, tzinfo=UTC)


def populate(store: Store, pairs: int, purchases: int, interactions: int) -> None:
    with store.connect() as conn:
        phones = [[("phone", "", f"+86138{i:08d}")] for i in range(pairs)]
        emails = [[("email", "", f"b{i}@example.com")] for i in range(pairs)]
        a_ids = resolve(conn, phones, source="bench").customer_ids
        b_ids = resolve(conn, emails, source="bench").customer_ids
        tag = conn.execute(
            sa.insert(Tag.__table__).returning(Tag.__table__.c.id), {"name": "vip"}
        ).scalar_one()  # type: ignore[attr-defined]
        conn.execute(
            sa.insert(Purchase.__table__),  # type: ignore[attr-defined]
            [
                {"source": "shop", "order_id": f"{b}-{k}", "customer_id": b, "amount_minor": 100}
                | {"currency": "CNY", "occurred_at": T0 + timedelta(days=k)}
                for b in b_ids
                for k in range(purchases)
            ],
        )
        conn.execute(
            sa.insert(Interaction.__table__),  # type: ignore[attr-defined]
            [
                {"platform": "bench", "external_id": f"{b}-{k}", "kind": "mention", "customer_id": b}
                | {"target_customer_id": a_ids[(i + k + 1) % pairs], "occurred_at": T0}
                for i, b in enumerate(b_ids)
                for k in range(interactions)
            ],
        )
        conn.execute(
            sa.insert(CustomerTag.__table__),  # type: ignore[attr-defined]
            [{"customer_id": c, "tag_id": tag, "created_at": T0} for c in a_ids + b_ids],
        )


def run(url: str, pairs: int, purchases: int, interactions: int) -> list[str]:
    store = Store(url)
    store.upgrade()
    populate(store, pairs, purchases, interactions)
    both = [[("phone", "", f"+86138{i:08d}"), ("email", "", f"b{i}@example.com")] for i in range(pairs)]
    start = time.perf_counter()
    with store.connect() as conn:
        merges = resolve(conn, both, source="bench").merges
    merged = time.perf_counter() - start
    with store.connect() as conn:
        recorded = conn.execute(sa.select(sa.func.count()).select_from(MergeMovedRow.__table__)).scalar_one()  # type: ignore[attr-defined]
        ids = list(conn.execute(sa.select(CustomerMerge.__table__.c.id)).scalars())  # type: ignore[attr-defined]
    start = time.perf_counter()
    with store.connect() as conn:
        for merge_id in ids:
            unmerge(conn, merge_id)
    undone = time.perf_counter() - start
    store.close()
    assert len(merges) == pairs
    return [
        store.dialect,
        f"{pairs:,}",
        f"{merged:.2f}",
        f"{1000 * merged / pairs:.2f}",
        f"{recorded:,}",
        f"{undone:.2f}",
        f"{1000 * undone / pairs:.2f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--purchases", type=int, default=10)
    parser.add_argument("--interactions", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(run(f"sqlite:///{tmp}/bench.db", args.pairs, args.purchases, args.interactions))
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        rows.append(
            run(f"{PG}?options=-csearch_path%3D{schema}", args.pairs, args.purchases, args.interactions)
        )
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    header = ["backend", "merges", "merge s", "ms/merge", "rows recorded", "unmerge s", "ms/unmerge"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
