"""Score snapshots in the store: one ``score_run`` per rescore and its rows, written in bulk.

A run is first recorded as ``running`` (committed on its own), then everything it found is written
in **one transaction** that also marks it ``done``: the per-customer rows (``customer_score``), the
communities, the lifecycle stage changes and the churn warnings. A crash or an error before that
commit leaves the previous snapshot as the current one; :func:`fail_run` then marks the run
``failed`` with the error (when the store can still be reached; otherwise it stays ``running``,
which readers ignore just the same). Readers only ever use the latest ``done`` run.

Writes go through the driver's bulk interface, as :mod:`scrm.purchases` does: ``executemany`` on
SQLite and ``COPY`` on PostgreSQL, so that a million customers are written in seconds.

Two rescores that overlap would each compare with the same previous run and record its stage
changes twice; the write transaction therefore takes the store's write lock first (an advisory lock
on PostgreSQL, the database lock on SQLite) and refuses to commit when another run finished since
this one read the previous snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from scrm.errors import StoreError
from scrm.models import ChurnWarning, Community, CustomerScore, ScoreRun, StageChange, UTCDateTime, utcnow
from scrm.purchases import utc_text
from scrm.store import Store

__all__ = [
    "SCORE_COLUMNS",
    "CommunityRow",
    "Previous",
    "SnapshotRows",
    "WriteResult",
    "bulk_insert",
    "epoch_sql",
    "fail_run",
    "fetch_chunks",
    "previous_snapshot",
    "prune_snapshots",
    "start_run",
    "write_snapshot",
]

run_t = ScoreRun.__table__  # type: ignore[attr-defined]
score_t = CustomerScore.__table__  # type: ignore[attr-defined]
community_t = Community.__table__  # type: ignore[attr-defined]
change_t = StageChange.__table__  # type: ignore[attr-defined]
warning_t = ChurnWarning.__table__  # type: ignore[attr-defined]

#: the per-customer columns of a snapshot, in the order they are written
SCORE_COLUMNS = tuple(c.name for c in score_t.columns if c.name not in ("run_id", "customer_id"))
_NULLABLE = frozenset(c.name for c in score_t.columns if c.nullable)
_LOCK_KEY = 0x5C0_4E  # PostgreSQL advisory lock of the snapshot writer
_REASON_LENGTH = change_t.c.reason.type.length
#: stages whose reasons are stored on a customer's first scoring too (see write_snapshot)
_WHY_ON_FIRST_ENTRY = frozenset({"at_risk", "won_back", "loyal"})


@dataclass(frozen=True)
class CommunityRow:
    """One community of a run; ``leaders`` are customer ids, highest influence first."""

    community_id: int
    size: int
    bridges: int
    modularity_share: float
    leaders: list[int]
    label: str


@dataclass(frozen=True)
class SnapshotRows:
    """What one run writes. Arrays are per node, aligned with ``customer_ids``."""

    customer_ids: np.ndarray
    scores: Mapping[str, np.ndarray]  # every name of SCORE_COLUMNS
    communities: Sequence[CommunityRow]
    stage: np.ndarray
    reasons: Sequence[Sequence[str]]
    churn_warning: np.ndarray


@dataclass(frozen=True)
class Previous:
    """The latest finished snapshot's stages and communities (empty before the first run)."""

    run_id: int | None
    as_of: datetime | None = None
    customer_ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    stage: np.ndarray = field(default_factory=lambda: np.empty(0, object))
    community_id: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # -1: none

    def stages_for(self, customer_ids: np.ndarray) -> np.ndarray:
        """The previous stage of each of these customers ('' for those not in the snapshot)."""
        out = np.full(len(customer_ids), "", dtype=object)
        found, where = self._align(customer_ids)
        out[found] = self.stage[where]
        return out

    def communities(self) -> dict[int, int]:
        """{customer id: community id} of the previous run (what ``stabilize_labels`` takes)."""
        keep = self.community_id >= 0
        return dict(zip(self.customer_ids[keep].tolist(), self.community_id[keep].tolist(), strict=True))

    def _align(self, customer_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(self.customer_ids) == 0:
            return np.zeros(len(customer_ids), bool), np.empty(0, np.int64)
        pos = np.searchsorted(self.customer_ids, customer_ids)
        pos_clipped = np.minimum(pos, len(self.customer_ids) - 1)
        found = self.customer_ids[pos_clipped] == customer_ids
        return found, pos_clipped[found]


@dataclass(frozen=True)
class WriteResult:
    stage_changes: int
    new_churn_warnings: int
    resolved_churn_warnings: int


def start_run(store: Store, *, as_of: datetime, parameters: Mapping[str, Any]) -> int:
    """Record a run as ``running`` (committed at once, so that a crash leaves a trace); its id."""
    with store.connect() as conn:
        result = conn.execute(
            sa.insert(run_t).values(
                started_at=utcnow(),
                as_of=as_of,
                status="running",
                parameters=json.dumps(parameters, sort_keys=True),
                summary="{}",
            )
        )
        run_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    assert run_id is not None
    return int(run_id)


def fail_run(store: Store, run_id: int, error: str, *, finished_at: datetime) -> bool:
    """Mark a run ``failed`` with its error; False when the store could not be reached to say so."""
    try:
        with store.connect() as conn:
            conn.execute(
                sa.update(run_t)
                .where(run_t.c.id == run_id, run_t.c.status == "running")
                .values(status="failed", finished_at=finished_at, summary=json.dumps({"error": error}))
            )
    except (sa.exc.SQLAlchemyError, StoreError):
        return False
    return True


def _latest_done(conn: Connection) -> int | None:
    query = sa.select(sa.func.max(run_t.c.id)).where(run_t.c.status == "done")
    value = conn.execute(query).scalar_one_or_none()
    return None if value is None else int(value)


def previous_snapshot(conn: Connection) -> Previous:
    """Stages and community ids of the latest finished run, sorted by customer id."""
    run_id = _latest_done(conn)
    if run_id is None:
        return Previous(None)
    as_of = conn.execute(sa.select(run_t.c.as_of).where(run_t.c.id == run_id)).scalar_one()
    sql = "SELECT customer_id, stage, community_id FROM customer_score WHERE run_id = %s ORDER BY customer_id"
    ids, stage, community = [], [], []
    for chunk in fetch_chunks(conn, sql, (run_id,)):
        i, s, c = zip(*chunk, strict=True)
        ids.append(np.array(i, np.int64))
        stage.append(np.array(s, object))
        community.append(np.array([-1 if v is None else v for v in c], np.int64))
    if not ids:
        return Previous(run_id, as_of)
    return Previous(run_id, as_of, np.concatenate(ids), np.concatenate(stage), np.concatenate(community))


def fetch_chunks(conn: Connection, sql: str, params: tuple[Any, ...]) -> Iterator[list[tuple[Any, ...]]]:
    """Rows in chunks from the driver's own cursor: no SQLAlchemy row objects on hot paths.

    ``sql`` uses ``%s`` placeholders (turned into ``?`` on SQLite); values are always bound.
    """
    if conn.dialect.name == "sqlite":
        sql = sql.replace("%s", "?")
    cursor: Any = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(100_000):
            yield chunk
    finally:
        cursor.close()


def epoch_sql(conn: Connection, column: str) -> str:
    """SQL for a stored time (a column name, never a value) as unix seconds, a float."""
    if conn.dialect.name == "postgresql":
        return f"date_part('epoch', {column})"  # float8 (extract() makes a slower numeric)
    return f"(julianday({column}) - 2440587.5) * 86400.0"


def _pg_type(column: sa.Column[Any]) -> str:
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return "bool"
    if isinstance(kind, sa.BigInteger):
        return "int8"
    if isinstance(kind, sa.Integer):
        return "int4"
    if isinstance(kind, sa.Float):
        return "float8"
    if isinstance(kind, sa.DateTime | UTCDateTime):
        return "timestamptz"
    return "text"


def bulk_insert(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """Rows through the driver's bulk interface: binary COPY on PostgreSQL, executemany on SQLite.

    Times must be timezone-aware datetimes on PostgreSQL and :func:`scrm.purchases.utc_text` on SQLite.
    """
    raw: Any = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        with raw.cursor() as cur, cur.copy(sql) as copy:
            copy.set_types([_pg_type(table.c[name]) for name in columns])
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in columns)
    cursor = raw.cursor()
    try:
        cursor.executemany(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})", rows)
    finally:
        cursor.close()


def _column_values(name: str, values: np.ndarray) -> list[Any]:
    if values.dtype == bool:
        return list(values.tolist())
    if name in _NULLABLE and values.dtype.kind == "f":
        return [None if v != v else v for v in values.tolist()]  # NaN -> NULL
    if name in _NULLABLE and values.dtype.kind in "iu":
        return [None if v < 0 else v for v in values.tolist()]  # -1 -> NULL (e.g. no community)
    return list(values.tolist())


def _time_value(conn: Connection, moment: datetime) -> datetime | str:
    return utc_text(moment) if conn.dialect.name == "sqlite" else moment


def _lock(conn: Connection, run_id: int, previous_run_id: int | None) -> None:
    """Take the writer's lock, then check no other run finished since ``previous_run_id`` was read."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
    else:  # the first write takes SQLite's database lock for the rest of the transaction
        conn.execute(sa.update(run_t).where(run_t.c.id == run_id).values(status="running"))
    latest = _latest_done(conn)
    if latest != previous_run_id:
        raise StoreError(
            f"score run {latest} finished while run {run_id} was computing; run `scrm score` again"
        )


class _ReasonCache:
    """Each customer's reasons built once (the stage change and the churn warning share them)."""

    def __init__(self, reasons: Sequence[Sequence[str]]) -> None:
        self._reasons = reasons
        self._done: dict[int, list[str]] = {}

    def get(self, index: int) -> list[str]:
        if index not in self._done:
            self._done[index] = list(self._reasons[index])
        return self._done[index]

    def text(self, index: int) -> str:
        return "; ".join(self.get(index))[:_REASON_LENGTH]


def write_snapshot(
    store: Store,
    run_id: int,
    rows: SnapshotRows,
    *,
    as_of: datetime,
    previous: Previous,
    summary: Mapping[str, Any],
    summarise: Callable[[Connection], Mapping[str, Any]] | None = None,
) -> WriteResult:
    """Write a run's snapshot, stage changes and churn warnings, and mark it ``done``, atomically.

    ``summarise``, given the connection once the rows are written (same transaction), returns more
    entries for the run's summary (the pipeline keeps the funnel there: :mod:`graph.funnels`).

    A stage change keeps the reasons of the new stage, except on a customer's first scoring into
    prospect, new, active or churned (their reason is plain from the snapshot: never bought, one
    purchase, how many and how long ago), which spares the first run a million sentences.
    """
    ids = rows.customer_ids.astype(np.int64)
    old_stage = previous.stages_for(ids)
    changed = np.flatnonzero(old_stage != rows.stage)
    reasons = _ReasonCache(rows.reasons)
    # Sentences cost microseconds each: on a customer's first scoring they are kept only where the
    # stage's "why" is not plain from the scores themselves (a million first entries otherwise).
    keep = (old_stage[changed] != "") | np.isin(rows.stage[changed], list(_WHY_ON_FIRST_ENTRY))
    when = utc_text(as_of) if store.dialect == "sqlite" else as_of
    changes = [
        (int(ids[i]), old_stage[i], rows.stage[i], when, run_id, reasons.text(i) if k else "")
        for i, k in zip(changed.tolist(), keep.tolist(), strict=True)
    ]
    with store.connect() as conn:
        _lock(conn, run_id, previous.run_id)
        columns = [[run_id] * len(ids), ids.tolist()]
        columns += [_column_values(name, np.asarray(rows.scores[name])) for name in SCORE_COLUMNS]
        bulk_insert(conn, score_t, ("run_id", "customer_id", *SCORE_COLUMNS), zip(*columns, strict=True))
        if rows.communities:
            conn.execute(
                sa.insert(community_t),
                [
                    {
                        "run_id": run_id,
                        "community_id": c.community_id,
                        "size": c.size,
                        "bridges": c.bridges,
                        "modularity_share": c.modularity_share,
                        "leaders": json.dumps(c.leaders),
                        "label": c.label[:200],
                    }
                    for c in rows.communities
                ],
            )
        columns_changed = ("customer_id", "from_stage", "to_stage", "changed_at", "run_id", "reason")
        bulk_insert(conn, change_t, columns_changed, changes)
        new_warnings, resolved = _update_warnings(conn, run_id, ids, rows, reasons, as_of)
        result = WriteResult(len(changed), new_warnings, resolved)
        full_summary = {
            **summary,
            "stage_changes": result.stage_changes,
            "new_churn_warnings": new_warnings,
            "resolved_churn_warnings": resolved,
            **(summarise(conn) if summarise else {}),
        }
        conn.execute(
            sa.update(run_t)
            .where(run_t.c.id == run_id)
            .values(status="done", finished_at=utcnow(), summary=json.dumps(full_summary))
        )
    return result


def _update_warnings(
    conn: Connection, run_id: int, ids: np.ndarray, rows: SnapshotRows, reasons: _ReasonCache, as_of: datetime
) -> tuple[int, int]:
    """Resolve the open warnings of customers no longer at risk; open one for each newly at risk.

    A warning stays open while the customer's stage is ``at_risk`` (customers merged away, who are
    no longer scored, leave it too); resolving is one set-based UPDATE over the snapshot just written.
    """
    c = warning_t.c
    still_at_risk = sa.select(score_t.c.customer_id).where(
        score_t.c.run_id == run_id, score_t.c.stage == "at_risk"
    )
    resolved = conn.execute(
        sa.update(warning_t)
        .where(c.resolved_at.is_(None), c.customer_id.not_in(still_at_risk))
        .values(resolved_at=as_of, resolved_run_id=run_id)
    ).rowcount
    sql = "SELECT customer_id FROM churn_warning WHERE resolved_at IS NULL"
    open_ids = np.array([r[0] for chunk in fetch_chunks(conn, sql, ()) for r in chunk], dtype=np.int64)
    new = np.flatnonzero(np.asarray(rows.churn_warning, bool) & ~np.isin(ids, open_ids))
    when = _time_value(conn, as_of)
    bulk_insert(
        conn,
        warning_t,
        ("customer_id", "run_id", "created_at", "reasons"),
        ((int(ids[i]), run_id, when, json.dumps(reasons.get(i))) for i in new.tolist()),
    )
    return len(new), int(resolved)


def prune_snapshots(store: Store, keep: int) -> int:
    """Delete the per-customer rows and communities of all but the ``keep`` latest finished runs.

    The ``score_run`` rows stay (a small history of runs); returns how many score rows went.
    """
    with store.connect() as conn:
        done = conn.execute(
            sa.select(run_t.c.id).where(run_t.c.status == "done").order_by(run_t.c.id.desc())
        ).scalars()
        old = [int(r) for r in done][keep:]
        if not old:
            return 0
        cut = max(old)
        deleted = conn.execute(sa.delete(score_t).where(score_t.c.run_id <= cut)).rowcount
        conn.execute(sa.delete(community_t).where(community_t.c.run_id <= cut))
    return int(deleted)
