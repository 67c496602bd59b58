"""The whole rescore from the store (``scrm score``), on SQLite and PostgreSQL.

``.venv/bin/python bench/bench_rescore.py`` (100,000 customers, ~1,000,000 interactions, ~400,000
purchases) or ``--customers 10000`` for a quick run, ``--backends sqlite``. A store is generated
(seeded, written straight through the drivers' bulk paths: untimed), then a child process runs
:func:`graph.pipeline.rescore` twice: the first run (every customer enters a first stage) and a
second one a week later (the steady state: only changed stages are written). The table gives each
stage's seconds from the run's own timings, the total, and the child's peak RSS.

The social graph has planted communities (about 200 customers each, 90 % of ties inside) and
heavy-tailed popularity (Pareto, shape 1.5): ten interactions per customer (shares read, replies,
mentions, messages) over the last year, a referral for one customer in five, follows for 60 %.
Purchases come from ``bench_value.generate`` (the BG/NBD story, four per customer on average).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_value import generate as generate_purchases

from graph.inputs import ScoreInputs
from graph.snapshots import bulk_insert
from scrm.config import load_settings
from scrm.models import Account, Customer, Follow, Interaction, Relation
from scrm.purchases import utc_text, write_purchases
from scrm.store import Store

NOW = datetime(2026, 11, 1, tzinfo=UTC)
DAY = 86_400.0
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
KINDS = np.array(["share_read", "reply", "mention", "message_to"])
STEPS = ("loading the graph", "loading purchases and follows", "influence (PageRank)", "reach", "communities",
         "customer value", "lifecycle", "social value", "writing the snapshot")  # fmt: skip
SHORT = ("graph", "purch.", "PageRank", "reach", "comm.", "value", "lifecycle", "social", "write")


def social_ties(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(who pays attention, to whom, kind, days ago) for ten ties per customer, communities planted."""
    rng = np.random.default_rng(seed)
    community = rng.integers(0, max(1, n // 200), n)
    popularity = rng.pareto(1.5, n) + 1.0
    order = np.argsort(community, kind="stable")
    cum = np.cumsum(popularity[order])
    first = np.searchsorted(community[order], np.arange(community.max() + 1))
    start = np.where(first > 0, cum[np.maximum(first - 1, 0)], 0.0)
    total = np.append(start[1:], cum[-1]) - start
    m = 10 * n
    src = rng.integers(0, n, m)
    inside = rng.random(m) < 0.9
    c = community[src]
    draw = np.where(inside, start[c] + rng.random(m) * total[c], rng.random(m) * cum[-1])
    dst = order[np.minimum(np.searchsorted(cum, draw, side="right"), n - 1)]
    keep = src != dst
    kind = KINDS[rng.choice(4, m, p=[0.5, 0.25, 0.2, 0.05])]
    return src[keep], dst[keep], kind[keep], rng.uniform(0, 365, m)[keep]


def _times(conn: sa.Connection, days_ago: np.ndarray) -> list[Any]:
    moments = [NOW - timedelta(days=float(d)) for d in days_ago.tolist()]
    return [utc_text(t) for t in moments] if conn.dialect.name == "sqlite" else moments


def fill(store: Store, n: int, seed: int) -> dict[str, int]:
    """A store of ``n`` customers with ties, referrals, follows and purchases; returns the counts."""
    rng = np.random.default_rng(seed + 1)
    src, dst, kind, age = social_ties(n, seed)
    ids = np.arange(1, n + 1)
    with store.connect() as conn:
        account = conn.execute(
            sa.insert(Account.__table__).values(  # type: ignore[attr-defined]
                name="main", platform="wechat", external_id="wxbench", display_name="", created_at=NOW
            )
        ).inserted_primary_key[0]
        created = _times(conn, np.full(n, 800.0))
        bulk_insert(conn, Customer.__table__, ("id", "display_name", "created_at"),  # type: ignore[attr-defined]
                    zip(ids.tolist(), (f"c{i}" for i in ids.tolist()), created, strict=True))  # fmt: skip
        follows = np.flatnonzero(rng.random(n) < 0.6)
        since = _times(conn, rng.uniform(0, 700, follows.size))
        bulk_insert(
            conn,
            Follow.__table__,  # type: ignore[attr-defined]
            ("account_id", "customer_id", "subscribed_at", "scene", "channel"),
            ((account, int(ids[i]), t, "", "") for i, t in zip(follows.tolist(), since, strict=True)),
        )
        referred = np.flatnonzero(rng.random(n) < 0.2)
        referrer = dst[rng.integers(0, dst.size, referred.size)]  # popular customers refer more
        ok = referrer != referred
        times = _times(conn, rng.uniform(0, 365, int(ok.sum())))
        bulk_insert(
            conn,
            Relation.__table__,  # type: ignore[attr-defined]
            ("kind", "source_id", "target_id", "weight", "count", "first_at", "last_at"),
            (("referred_by", int(ids[a]), int(ids[b]), 1.0, 1, t, t)
             for a, b, t in zip(referred[ok].tolist(), referrer[ok].tolist(), times, strict=True)),
        )  # fmt: skip
        share = kind == "share_read"  # stored as the sharer's interaction, the reader as its target
        author = np.where(share, dst, src)
        other = np.where(share, src, dst)
        ties = zip(kind.tolist(), author.tolist(), other.tolist(), _times(conn, age), strict=True)
        bulk_insert(
            conn,
            Interaction.__table__,  # type: ignore[attr-defined]
            ("platform", "external_id", "kind", "customer_id", "target_customer_id", "occurred_at", "content",
             "channel"),
            (("wechat", f"x{i}", k, int(ids[a]), int(ids[b]), t, "", "")
             for i, (k, a, b, t) in enumerate(ties)),
        )  # fmt: skip
        who, when, amount, horizon = generate_purchases(n, 4 * n, seed)
        moments = [NOW - timedelta(seconds=float(horizon - t)) for t in when.tolist()]
        bought = zip(who.tolist(), amount.tolist(), moments, strict=True)
        rows = [("bench", f"o{i}", int(ids[c]), int(a), "CNY", m) for i, (c, a, m) in enumerate(bought)]
        write_purchases(conn, rows)
    store.analyze("customer", "follow", "relation", "interaction", "purchase")
    return {"interactions": int(src.size), "referrals": int(ok.sum()), "purchases": len(rows)}


def score_child(url: str) -> None:
    """Runs in the child: two rescores, their timings and the peak RSS as JSON on stdout."""
    from graph.pipeline import rescore

    settings = load_settings(None, environ={"SCRM_DATABASE__URL": url})
    store = Store(settings.database_url)
    out = []
    for when in (NOW, NOW + timedelta(days=7)):
        report = rescore(store, settings, now=when)
        out.append(report.as_dict())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"runs": out, "peak_mb": peak}))


def arrays_child(url: str, n: int, seed: int) -> None:
    """Runs in the child: the scoring stages from generated arrays (no store reads), then the snapshot
    writes into the store, twice; timings and the peak RSS as JSON on stdout."""
    from graph import snapshots
    from graph.build import from_edges
    from graph.pipeline import StageTimer, score_arrays

    settings = load_settings(None, environ={"SCRM_DATABASE__URL": url})
    kinds = settings.scoring.kinds.model_dump()
    src, dst, kind, age = social_ties(n, seed)
    rng = np.random.default_rng(seed + 1)
    weight = np.vectorize(kinds.get)(kind) * 0.5 ** (age / settings.scoring.half_life_days)
    referred = np.flatnonzero(rng.random(n) < 0.2)
    referrer = dst[rng.integers(0, dst.size, referred.size)]
    start = time.perf_counter()
    graph = from_edges(np.arange(n), src, dst, weight, referral=(referred, referrer))
    built = time.perf_counter() - start
    who, when, amount, horizon = generate_purchases(n, 4 * n, seed)
    store = Store(settings.database_url)
    out = []
    for day in (0, 7):
        now = NOW + timedelta(days=day)
        with store.connect() as conn:
            previous = snapshots.previous_snapshot(conn)
        inputs = ScoreInputs(
            graph, who, NOW.timestamp() - horizon + when, amount, rng.random(n) < 0.6, previous
        )
        timer = StageTimer(None)
        start = time.perf_counter()
        rows, counts = score_arrays(inputs, settings, now=now, clock=timer)
        run_id = snapshots.start_run(store, as_of=now, parameters={})
        with timer.stage("writing the snapshot"):
            written = snapshots.write_snapshot(
                store, run_id, rows, as_of=now, previous=previous, summary=counts
            )
        seconds = time.perf_counter() - start
        out.append({**counts, "timings": {"from arrays": built, **timer.timings}, "seconds": seconds,
                    "stage_changes": written.stage_changes})  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"runs": out, "peak_mb": peak}))


def run_backend(backend: str, n: int, seed: int, workdir: Path, *, arrays: bool = False) -> dict[str, Any]:
    if backend == "sqlite":
        url, cleanup = f"sqlite:///{workdir / f'rescore-{n}.db'}", None
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    else:
        schema = f"bench_rescore_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        url, cleanup = f"{PG_URL}?options=-csearch_path%3D{schema}", schema
    try:
        store = Store(url)
        store.upgrade()
        if arrays:
            store.close()
            command = [
                sys.executable,
                __file__,
                "--arrays-child",
                url,
                "--customers",
                str(n),
                "--seed",
                str(seed),
            ]
            child = subprocess.run(command, capture_output=True, text=True, check=True)
            return dict(json.loads(child.stdout.strip().splitlines()[-1]))
        start = time.perf_counter()
        counts = fill(store, n, seed)
        store.close()
        counts["fill_seconds"] = round(time.perf_counter() - start, 1)
        child = subprocess.run(
            [sys.executable, __file__, "--score", url], capture_output=True, text=True, check=True
        )
        return {**counts, **json.loads(child.stdout.strip().splitlines()[-1])}
    finally:
        if cleanup:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{cleanup}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--arrays",
        action="store_true",
        help="Score generated arrays (graph, purchases) instead of reading a generated store; the "
        "snapshot is still written to each backend (1M customers in minutes rather than an hour).",
    )
    parser.add_argument("--score", help=argparse.SUPPRESS)
    parser.add_argument("--arrays-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.score:
        score_child(args.score)
        return
    if args.arrays_child:
        arrays_child(args.arrays_child, args.customers, args.seed)
        return
    console = Console(width=160)
    source = "generated arrays" if args.arrays else "the store"
    table = Table(title=f"scrm score from {source}: {args.customers:,} customers, seed {args.seed}")
    steps, short = (("from arrays", *STEPS[2:]), ("graph", *SHORT[2:])) if args.arrays else (STEPS, SHORT)
    for column in ("backend", "run", "customers", "ties", "purchases", *short, "total s", "peak RSS MB"):
        table.add_column(column, justify="left" if column in ("backend", "run") else "right")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            result = run_backend(backend, args.customers, args.seed, Path(tmp), arrays=args.arrays)
            if not args.arrays:
                console.print(
                    f"{backend}: store filled in {result['fill_seconds']} s ({result['interactions']:,} "
                    f"interactions, {result['referrals']:,} referrals)"
                )
            for name, run in zip(("first", "second"), result["runs"], strict=True):
                table.add_row(
                    backend,
                    name,
                    f"{run['customers']:,}",
                    f"{run['edges']:,}",
                    f"{run['purchases']:,}",
                    *(f"{run['timings'].get(step, 0.0):.2f}" for step in steps),
                    f"{run['seconds']:.1f}",
                    f"{result['peak_mb']:.0f}",
                )
    console.print(table)


if __name__ == "__main__":
    main()
