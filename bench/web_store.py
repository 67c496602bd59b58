"""A store of N customers for the web benchmark (``bench_web.py``), built in bulk and cached.

Everything is generated with numpy (seeded: the same store on every machine) and written through the
drivers' bulk paths (:func:`graph.snapshots.bulk_insert`: ``executemany`` on SQLite, binary ``COPY``
on PostgreSQL); the two score runs go through :func:`graph.snapshots.write_snapshot`, as ``scrm score``
writes them (so the first run records a stage change per customer and opens the churn warnings).

Per customer: an openid (all), a unionid (half), a phone (a third); a follow (70 %); a referral (20 %);
two interactions on average (shares read, replies, mentions, messages; heavy-tailed popularity);
purchases from ``bench_value.generate`` (about one per customer); tags (30 %); two score runs a week
apart (communities of about 200 with leaders and bridges); deliveries of one campaign run (10 %).

The built store is cached (SQLite: a file under ``bench/out/web/``; PostgreSQL: a schema of the
``test`` database), keyed by size, seed and :data:`VERSION`, and reused by later runs; each run still
upgrades it to the code's schema (``scrm init``). PostgreSQL's tables are vacuumed and analysed, as
autovacuum would after a bulk load.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_value import generate as generate_purchases

from graph.funnels import CHURN_KEY, SUMMARY_KEY, churn_head, compute_funnel
from graph.lifecycle import STAGES
from graph.snapshots import (
    CommunityRow,
    SnapshotRows,
    bulk_insert,
    previous_snapshot,
    start_run,
    write_snapshot,
)
from scrm.models import (
    Account,
    CampaignRun,
    Customer,
    CustomerTag,
    Delivery,
    Follow,
    Identity,
    Interaction,
    Purchase,
    Relation,
    Tag,
)
from scrm.purchases import utc_text
from scrm.store import Store

__all__ = ["NOW", "PG_URL", "VERSION", "cached_store"]

#: bump when the generated data changes, so that caches are rebuilt
VERSION = 1
NOW = datetime(2026, 11, 1, tzinfo=UTC)
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
CACHE = Path(__file__).resolve().parent / "out" / "web"
WEIGHTS = {"influence": 0.3, "reach": 0.2, "community": 0.2, "lifetime_value": 0.3}
KINDS = np.array(["share_read", "reply", "mention", "message_to"])
SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗")
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚")


def _table(model: Any) -> sa.Table:
    table: sa.Table = model.__table__
    return table


class _Times:
    """Times for the driver: UTC text on SQLite, aware datetimes on PostgreSQL."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"

    def __call__(self, days_ago: np.ndarray) -> list[Any]:
        moments = [NOW - timedelta(days=float(d)) for d in days_ago.tolist()]
        return [utc_text(t) for t in moments] if self.sqlite else moments


def _names(n: int, rng: np.random.Generator) -> list[str]:
    s = rng.integers(0, len(SURNAMES), n).tolist()
    g = rng.integers(0, len(GIVEN), n).tolist()
    latin = rng.random(n) < 0.3
    return [
        f"customer {i}" if lat else f"{SURNAMES[a]}{GIVEN[b]}{i % 97}"
        for i, a, b, lat in zip(range(1, n + 1), s, g, latin.tolist(), strict=True)
    ]


def _people(conn: sa.Connection, n: int, rng: np.random.Generator, times: _Times) -> int:
    """Account, customers, identities, follows, tags; returns the account id."""
    account = conn.execute(
        sa.insert(_table(Account)).values(
            name="main", platform="wechat", external_id="wxbench", display_name="bench", created_at=NOW
        )
    ).inserted_primary_key[0]
    ids = np.arange(1, n + 1)
    created = times(rng.uniform(30, 900, n))
    bulk_insert(conn, _table(Customer), ("id", "display_name", "created_at"),
                zip(ids.tolist(), _names(n, rng), created, strict=True))  # fmt: skip
    columns = ("customer_id", "kind", "scope", "value", "platform", "account_id", "source", "created_at")
    rows: list[tuple[Any, ...]] = [
        (i, "openid", "wxbench", f"obench{i:010d}", "wechat", account, "sync:wechat", t)
        for i, t in zip(ids.tolist(), created, strict=True)
    ]
    for i in np.flatnonzero(rng.random(n) < 0.5).tolist():
        rows.append((i + 1, "unionid", "", f"ubench{i + 1:010d}", "wechat", None, "sync:wechat", created[i]))
    for i in np.flatnonzero(rng.random(n) < 0.33).tolist():
        rows.append((i + 1, "phone", "", f"+86138{i + 1:08d}", "", None, "import:shop", created[i]))
    bulk_insert(conn, _table(Identity), columns, rows)
    follows = np.flatnonzero(rng.random(n) < 0.7)
    channels = np.array(["", "", "qr_store", "qr_poster", "referral"])[rng.integers(0, 5, follows.size)]
    bulk_insert(
        conn,
        _table(Follow),
        ("account_id", "customer_id", "subscribed_at", "scene", "channel"),
        zip([account] * follows.size, (follows + 1).tolist(), times(rng.uniform(0, 700, follows.size)),
            ["ADD_SCENE_QR_CODE"] * follows.size, channels.tolist(), strict=True),
    )  # fmt: skip
    tag_rows = [(f"tag {k}", account, str(100 + k)) for k in range(20)]
    conn.execute(
        sa.insert(_table(Tag)), [{"name": a, "account_id": b, "external_id": c} for a, b, c in tag_rows]
    )
    tag_ids = [r[0] for r in conn.execute(sa.select(_table(Tag).c.id).order_by(_table(Tag).c.id))]
    tagged = np.flatnonzero(rng.random(n) < 0.3)
    chosen = np.asarray(tag_ids)[rng.integers(0, len(tag_ids), tagged.size)]
    when = times(np.full(tagged.size, 10.0))
    bulk_insert(conn, _table(CustomerTag), ("customer_id", "tag_id", "created_at"),
                zip((tagged + 1).tolist(), chosen.tolist(), when, strict=True))  # fmt: skip
    return int(account)


def _activity(conn: sa.Connection, n: int, account: int, rng: np.random.Generator, times: _Times) -> None:
    """Referrals, interactions (heavy-tailed popularity) and purchases."""
    popularity = rng.pareto(1.5, n) + 1.0
    cum = np.cumsum(popularity)
    m = 2 * n
    src = rng.integers(0, n, m)
    dst = np.minimum(np.searchsorted(cum, rng.random(m) * cum[-1]), n - 1)
    keep = src != dst
    src, dst = src[keep] + 1, dst[keep] + 1
    kind = KINDS[rng.choice(4, src.size, p=[0.5, 0.25, 0.2, 0.05])]
    bulk_insert(
        conn,
        _table(Interaction),
        ("platform", "external_id", "kind", "customer_id", "target_customer_id", "account_id", "occurred_at",
         "content", "channel"),
        (("wechat", f"x{k}", kd, a, b, account, t, "hello" if kd == "message_to" else "", "")
         for k, (kd, a, b, t) in enumerate(zip(kind.tolist(), src.tolist(), dst.tolist(),
                                               times(rng.uniform(0, 365, src.size)), strict=True))),
    )  # fmt: skip
    referred = np.flatnonzero(rng.random(n) < 0.2) + 1
    referrer = dst[rng.integers(0, dst.size, referred.size)]
    ok = referrer != referred
    when = times(rng.uniform(0, 365, int(ok.sum())))
    bulk_insert(
        conn,
        _table(Relation),
        ("kind", "source_id", "target_id", "weight", "count", "first_at", "last_at"),
        (("referred_by", a, b, 1.0, 1, t, t)
         for a, b, t in zip(referred[ok].tolist(), referrer[ok].tolist(), when, strict=True)),
    )  # fmt: skip
    who, at, amount, horizon = generate_purchases(n, n, 7)
    days = (horizon - at) / 86_400.0
    bulk_insert(
        conn,
        _table(Purchase),
        ("source", "order_id", "customer_id", "amount_minor", "currency", "occurred_at"),
        (("shop", f"o{k}", c + 1, int(a), "CNY", t)
         for k, (c, a, t) in enumerate(zip(who.tolist(), amount.tolist(), times(days), strict=True))),
    )  # fmt: skip


class _Reasons(Sequence[Sequence[str]]):
    """Each customer's stage reasons, made only when asked for (write_snapshot asks for a few)."""

    def __init__(self, stage: np.ndarray) -> None:
        self.stage = stage

    def __len__(self) -> int:
        return len(self.stage)

    def __getitem__(self, index: Any) -> Any:
        return [f"entered {self.stage[index]}: generated by bench_web"]


def _scores(n: int, rng: np.random.Generator, week: int) -> SnapshotRows:
    """One run's snapshot rows: heavy-tailed influence, communities of ~200, percentile components."""
    ids = np.arange(1, n + 1, dtype=np.int64)
    influence = rng.pareto(1.2, n) + 1.0
    influence /= influence.sum()
    community = rng.integers(0, max(1, n // 200), n)
    reach2 = rng.poisson(40, n) + (influence * n * 5).astype(np.int64)
    bridge = rng.random(n) ** 4
    monetary = np.where(rng.random(n) < 0.7, np.round(rng.lognormal(9.5, 1.0, n)), 0).astype(np.int64)
    clv = (monetary * rng.uniform(0.2, 1.5, n)).astype(np.int64)

    def pct(values: np.ndarray) -> np.ndarray:
        return np.argsort(np.argsort(values, kind="stable")).astype(np.float64) / max(1, n - 1)

    n_inf, n_reach, n_comm, n_value = pct(influence), pct(reach2), pct(bridge), pct(clv)
    social = 100 * (0.3 * n_inf + 0.2 * n_reach + 0.2 * n_comm + 0.3 * n_value)
    leaders = np.zeros(n, bool)
    order = np.lexsort((-influence, community))
    first = np.r_[True, community[order][1:] != community[order][:-1]]
    leaders[order[first]] = True
    stage = np.asarray(STAGES, dtype=object)[
        rng.choice(len(STAGES), n, p=[0.3, 0.15, 0.2, 0.1, 0.1, 0.1, 0.05])
    ]
    scores = {
        "influence": influence, "reach_direct": rng.poisson(8, n), "reach_two_hop": reach2,
        "referral_reach": rng.poisson(0.3, n), "community_id": community, "is_leader": leaders,
        "is_bridge": bridge > 0.6, "bridge_score": bridge,
        "recency_days": np.where(monetary > 0, rng.uniform(0, 700, n), np.nan),
        "frequency": rng.poisson(1.0, n), "monetary_minor": monetary,
        "rfm": np.array([f"{a}{b}{c}" for a, b, c in rng.integers(1, 6, (n, 3)).tolist()], dtype=object),
        "p_alive": rng.random(n), "expected_purchases": rng.random(n) * 2, "clv_minor": clv,
        "n_influence": n_inf, "n_reach": n_reach, "n_community": n_comm, "n_value": n_value,
        "social_value": social, "stage": stage,
    }  # fmt: skip
    sizes = np.bincount(community)
    communities = [
        CommunityRow(int(c), int(sizes[c]), int(sizes[c] // 10), float(sizes[c]) / n,
                     [int(ids[order[first]][c])], f"community {c} (week {week})")
        for c in range(sizes.size) if sizes[c]
    ]  # fmt: skip
    return SnapshotRows(ids, scores, communities, stage, _Reasons(stage), stage == "at_risk")


def _score_runs(store: Store, n: int, rng: np.random.Generator) -> None:
    for week in (0, 1):
        as_of = NOW + timedelta(days=7 * week)
        rows = _scores(n, rng, week)
        with store.connect() as conn:
            previous = previous_snapshot(conn)
        parameters = {"scoring": {"weights": WEIGHTS}, "currency": "CNY", "generated_by": "bench_web"}
        run_id = start_run(store, as_of=as_of, parameters=parameters)
        summary = {"customers": n, "communities": len(rows.communities)}
        write_snapshot(
            store, run_id, rows, as_of=as_of, previous=previous, summary=summary,
            summarise=lambda conn, r=run_id: {
                SUMMARY_KEY: compute_funnel(conn, r), CHURN_KEY: churn_head(conn, r),
            },
        )  # fmt: skip


def _deliveries(conn: sa.Connection, n: int, rng: np.random.Generator, times: _Times) -> None:
    run = conn.execute(
        sa.insert(_table(CampaignRun)).values(
            run_key="invite_leaders@2026-10-30", campaign="invite_leaders", scheduled_for=NOW,
            started_at=NOW, finished_at=NOW, status="done", summary="{}",
        )
    ).inserted_primary_key[0]  # fmt: skip
    who = np.sort(rng.choice(n, n // 10, replace=False)) + 1
    when = times(rng.uniform(1, 3, who.size))
    bulk_insert(
        conn,
        _table(Delivery),
        ("run_id", "customer_id", "openid", "variant", "channel", "status", "reason", "error", "payload",
         "batch", "msg_id", "attempts", "owner", "due_at", "sent_at"),
        ((run, c, f"obench{c:010d}", "a", "text", "sent", "", "", "{}", 0, "", 1, "", t, t)
         for c, t in zip(who.tolist(), when, strict=True)),
    )  # fmt: skip


def build(store: Store, n: int, seed: int, log: Any = print) -> dict[str, float]:
    """Fill an empty store (schema at head) with ``n`` customers; seconds per step."""
    rng = np.random.default_rng(seed)
    times = _Times(store.dialect)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    with store.connect() as conn:
        account = _people(conn, n, rng, times)
    timings["people"] = time.perf_counter() - start
    log(f"  customers, identities, follows, tags: {timings['people']:.0f} s")
    store.analyze("customer", "identity", "follow")
    with store.connect() as conn:
        _activity(conn, n, account, rng, times)
    timings["activity"] = time.perf_counter() - start - sum(timings.values())
    log(f"  interactions, referrals, purchases: {timings['activity']:.0f} s")
    _score_runs(store, n, rng)
    timings["scores"] = time.perf_counter() - start - sum(timings.values())
    log(f"  two score runs: {timings['scores']:.0f} s")
    with store.connect() as conn:
        _deliveries(conn, n, rng, times)
    store.analyze("interaction", "purchase", "relation", "customer_tag", "customer_score", "stage_change",
                  "churn_warning", "community", "delivery", "score_run")  # fmt: skip
    return timings


def _pg_schema_url(schema: str) -> str:
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


def _keep_funnel(store: Store, backend: str, log: Any) -> None:
    """A store built before the score runs kept their funnel and churn head gets them now, as
    `scrm score` keeps them."""
    with store.connect() as conn:
        run = conn.execute(
            sa.text("SELECT id, summary FROM score_run WHERE status = 'done' ORDER BY id DESC")
        ).first()
        if run is None or CHURN_KEY in json.loads(run.summary):
            return
        start = time.perf_counter()
        kept = {SUMMARY_KEY: compute_funnel(conn, run.id), CHURN_KEY: churn_head(conn, run.id)}
        summary = {**json.loads(run.summary), **kept}
        conn.execute(
            sa.text("UPDATE score_run SET summary = :s WHERE id = :i"),
            {"s": json.dumps(summary), "i": run.id},
        )
    seconds = time.perf_counter() - start
    log(f"{backend}: the funnel and churn head of run {run.id} computed and kept in {seconds:.1f} s")


def cached_store(backend: str, n: int, seed: int, *, rebuild: bool = False, log: Any = print) -> str:
    """The URL of a built store of ``n`` customers (built now unless cached), upgraded to head."""
    key = f"web_{n}_s{seed}_v{VERSION}"
    if backend == "sqlite":
        CACHE.mkdir(parents=True, exist_ok=True)
        path = CACHE / f"{key}.db"
        if rebuild:
            path.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
        if path.exists():
            log(f"{backend}: cached store {path}")
        else:
            partial = CACHE / f"{key}.partial.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{partial}{suffix}").unlink(missing_ok=True)
            log(f"{backend}: building {n:,} customers into {path}")
            store = Store(f"sqlite:///{partial}")
            store.upgrade()
            build(store, n, seed, log)
            with store.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            store.close()
            partial.rename(path)
    else:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            if rebuild:
                conn.execute(f'DROP SCHEMA IF EXISTS "{key}" CASCADE')
            done = conn.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s"
                " AND table_name = 'bench_built'",
                (key,),
            ).fetchone()
            if done:
                log(f"{backend}: cached store in schema {key}")
            else:
                conn.execute(f'DROP SCHEMA IF EXISTS "{key}" CASCADE')
                conn.execute(f'CREATE SCHEMA "{key}"')
        url = _pg_schema_url(key)
        if not done:
            log(f"{backend}: building {n:,} customers into schema {key}")
            store = Store(url)
            store.upgrade()
            timings = build(store, n, seed, log)
            with store.connect() as conn:
                conn.exec_driver_sql("CREATE TABLE bench_built (timings text)")
                conn.execute(sa.text("INSERT INTO bench_built VALUES (:t)"), {"t": json.dumps(timings)})
            store.close()
    store = Store(url)
    before, after = store.upgrade()
    if before != after:
        log(f"{backend}: schema upgraded {before} -> {after}")
    _keep_funnel(store, backend, log)
    store.close()
    if backend == "postgresql":  # what autovacuum does after a bulk load: statistics, visibility map
        with psycopg.connect(PG_URL, autocommit=True, options=f"-csearch_path={key}") as conn:
            for table in (
                "customer",
                "customer_score",
                "stage_change",
                "interaction",
                "purchase",
                "identity",
            ):
                conn.execute(f"VACUUM (ANALYZE) {table}")
    return url
