"""The bot's hot writes as plain SQL on the driver's cursor: one statement per group of messages.

SQLAlchemy compiles a multi-row INSERT afresh for every group size (about 10 ms for 20 rows) and
runs every value through its type processors; a callback server writes a small group every few
milliseconds, so these statements are written out here. Table and column names come from this code;
every value is a bound parameter. Times: timezone-aware datetimes on PostgreSQL, UTC text on SQLite
(the format SQLAlchemy stores).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

__all__ = ["claim_and_record_pg", "claim_inbound", "insert_interactions", "upsert_activity"]

_INBOUND = (
    ("account_id", "int"),
    ("dedup_key", "text"),
    ("customer_id", "int"),
    ("kind", "text"),
    ("rule", "text"),
    ("status", "text"),
    ("reply", "text"),
    ("received_at", "timestamptz"),
)
_INTERACTION = (
    ("platform", "text"),
    ("external_id", "text"),
    ("kind", "text"),
    ("customer_id", "int"),
    ("account_id", "int"),
    ("occurred_at", "timestamptz"),
    ("content", "text"),
    ("channel", "text"),
)
_ACTIVITY = (
    ("account_id", "int"),
    ("customer_id", "int"),
    ("last_action_at", "timestamptz"),
    ("last_action_kind", "text"),
)


def _arrays(kinds: Sequence[str], data: Sequence[Sequence[Any]]) -> str:
    """The ``unnest`` arguments for columns of ``kinds``: each array in binary (``%b``), since the
    text format quotes every element through a regex in Python; a column of only NULLs has no type
    to dump in binary and goes as text."""
    return ", ".join(
        f"%{'b' if any(v is not None for v in values) else 's'}::{kind}[]"
        for kind, values in zip(kinds, data, strict=True)
    )


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _run(
    conn: Connection,
    table: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[tuple[Any, ...]],
    tail: str,
) -> list[tuple[Any, ...]]:
    """INSERT ``rows`` into ``table`` with ``tail`` (ON CONFLICT ... [RETURNING ...]); the rows returned."""
    names = ", ".join(name for name, _ in columns)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "postgresql":
            data = [list(values) for values in zip(*rows, strict=True)]
            arrays = _arrays([kind for _, kind in columns], data)
            sql = f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {tail}"
            cursor.execute(sql, data)
        else:
            times = {k for k, (_, kind) in enumerate(columns) if kind == "timestamptz"}
            flat = [_utc_text(v) if k in times else v for row in rows for k, v in enumerate(row)]
            marks = "(" + ", ".join("?" * len(columns)) + ")"
            sql = f"INSERT INTO {table} ({names}) VALUES {', '.join([marks] * len(rows))} {tail}"
            cursor.execute(sql, flat)
        return list(cursor.fetchall()) if "RETURNING" in tail else []
    finally:
        cursor.close()


def claim_inbound(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> set[tuple[int, str]]:
    """Insert inbound_message rows (the columns of ``_INBOUND``) unless their key is stored; return the
    (account_id, dedup_key) of those inserted. Keys must be distinct within ``rows``."""
    if not rows:
        return set()
    returned = _run(
        conn, "inbound_message", _INBOUND, rows, "ON CONFLICT DO NOTHING RETURNING account_id, dedup_key"
    )
    return {(int(a), str(k)) for a, k in returned}


def insert_interactions(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert interaction rows (the columns of ``_INTERACTION``), skipping any already stored."""
    if rows:
        _run(conn, "interaction", _INTERACTION, rows, "ON CONFLICT DO NOTHING")


def upsert_activity(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Set each (account, customer)'s last action unless a later one is stored; one row per pair."""
    if rows:
        tail = (
            "ON CONFLICT (account_id, customer_id) DO UPDATE SET last_action_at = excluded.last_action_at, "
            "last_action_kind = excluded.last_action_kind "
            "WHERE excluded.last_action_at >= follower_activity.last_action_at"
        )
        _run(conn, "follower_activity", _ACTIVITY, rows, tail)


_RECORD_KINDS = (
    *(kind for _, kind in _INBOUND),
    *(
        "text",
        "text",
        "timestamptz",
        "text",
        "text",
        "bool",
    ),  # platform, external_id, occurred_at, content, channel, acts
)
_RECORD_PG = """
WITH input AS (
  SELECT * FROM unnest({arrays})
    AS t(account_id, dedup_key, customer_id, kind, rule, status, reply, received_at,
         platform, external_id, occurred_at, content, channel, acts)
), claimed AS (
  INSERT INTO inbound_message (account_id, dedup_key, customer_id, kind, rule, status, reply, received_at)
  SELECT account_id, dedup_key, customer_id, kind, rule, status, reply, received_at FROM input
  ON CONFLICT DO NOTHING RETURNING account_id, dedup_key
), mine AS (
  SELECT input.* FROM input JOIN claimed USING (account_id, dedup_key)
), interactions AS (
  INSERT INTO interaction
    (platform, external_id, kind, customer_id, account_id, occurred_at, content, channel)
  SELECT platform, external_id, kind, customer_id, account_id, occurred_at, content, channel FROM mine
  ON CONFLICT DO NOTHING
), activity AS (
  INSERT INTO follower_activity (account_id, customer_id, last_action_at, last_action_kind)
  SELECT DISTINCT ON (account_id, customer_id) account_id, customer_id, occurred_at, kind
  FROM mine WHERE acts ORDER BY account_id, customer_id, occurred_at DESC
  ON CONFLICT (account_id, customer_id) DO UPDATE SET last_action_at = excluded.last_action_at,
    last_action_kind = excluded.last_action_kind
  WHERE excluded.last_action_at >= follower_activity.last_action_at
)
SELECT account_id, dedup_key FROM claimed
"""


def claim_and_record_pg(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> set[tuple[int, str]]:
    """PostgreSQL: claim, insert the claimed rows' interactions and last actions, in one statement.

    Each row is an inbound_message row (as :func:`claim_inbound`) followed by ``platform,
    external_id, occurred_at, content, channel`` of its interaction and whether it counts as the
    follower's own action. One round trip instead of three.
    """
    if not rows:
        return set()
    data = [list(values) for values in zip(*rows, strict=True)]
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(_RECORD_PG.format(arrays=_arrays(_RECORD_KINDS, data)), data)
        return {(int(a), str(k)) for a, k in cursor.fetchall()}
    finally:
        cursor.close()
