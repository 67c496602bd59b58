"""Plain-tuple bulk inserts through the database driver, skipping rows that break a unique key.

SQLAlchemy's executemany builds a parameter dict per row and runs each value through its type
processors; for the tens of thousands of rows a sync writes per second that costs more than the
database. Here rows are plain tuples: SQLite gets ``INSERT ... ON CONFLICT DO NOTHING`` with many
rows per statement (:func:`scrm.sqlite_rows.insert_many`; times as the UTC text SQLAlchemy
stores), PostgreSQL one ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING`` statement
with the arrays sent in binary. Table and column names come from the code, never from data; every
value is a bound parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from scrm.sqlite_rows import insert_many

__all__ = ["insert_rows"]


def _utc_text(moment: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores: UTC, no offset, microseconds.

    >>> _utc_text(datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
    '2026-05-01 12:00:00.000000'
    """
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(" ", "microseconds")[:26]  # less "+00:00"


def insert_rows(
    conn: Connection,
    table: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[tuple[Any, ...]],
) -> int:
    """Insert ``rows`` (tuples in the order of ``columns``) unless they conflict; return how many went in.

    ``columns`` are ``(name, PostgreSQL type)`` pairs, e.g. ``("customer_id", "int")``; a
    ``timestamptz`` column takes timezone-aware datetimes.
    """
    if not rows:
        return 0
    names = ", ".join(name for name, _ in columns)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "postgresql":
            # Arrays in binary format (%b): the text format quotes every element through a regex in
            # Python, which cost more than the server's insert. A column of only NULLs has no type
            # to dump in binary; it goes as text.
            data = [list(values) for values in zip(*rows, strict=True)]
            arrays = ", ".join(
                f"%{'b' if any(v is not None for v in values) else 's'}::{kind}[]"
                for (_, kind), values in zip(columns, data, strict=True)
            )
            cursor.execute(
                f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING", data
            )
        else:
            times = [k for k, (_, kind) in enumerate(columns) if kind == "timestamptz"]
            params: Sequence[Sequence[Any]] = rows
            if times:
                # column by column; rows of a batch share times (created_at; first_at = last_at)
                values = list(zip(*rows, strict=True))
                for k in times:
                    texts = {m: _utc_text(m) for m in set(values[k]) if m is not None}
                    values[k] = tuple(map(texts.get, values[k]))  # None stays None
                params = list(zip(*values, strict=True))
            return insert_many(cursor, f"INSERT INTO {table} ({names})", params, "ON CONFLICT DO NOTHING")
        return int(cursor.rowcount)
    finally:
        cursor.close()
