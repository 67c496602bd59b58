"""Bulk inserts on SQLite with many rows per statement.

``executemany`` of a one-row ``INSERT`` runs the statement once per row: binding, stepping and
resetting it each time. :func:`insert_many` sends :data:`ROWS_PER_STATEMENT` rows per statement
(``VALUES (...), (...), ...``) and the rest one by one: the same rows, in the same order, with about
40% less time per row (measured on the follow table with its four indexes). Rowids are handed out
in the order of the rows, as with one row per statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

__all__ = ["ROWS_PER_STATEMENT", "insert_many"]

#: rows per statement; SQLite binds at most 32,766 parameters per statement
ROWS_PER_STATEMENT = 200


def insert_many(cursor: Any, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> int:
    """Run ``{head} VALUES (?, ...), ... {tail}`` over ``rows``; return how many rows it changed.

    ``head`` is ``INSERT INTO table (columns)``, ``tail`` e.g. ``ON CONFLICT DO NOTHING``; both come
    from the code, every value is a bound parameter. ``cursor`` is a :mod:`sqlite3` cursor.

    >>> import sqlite3
    >>> db = sqlite3.connect(":memory:")
    >>> _ = db.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT UNIQUE)")
    >>> rows = [(None, str(i % 300)) for i in range(450)]
    >>> insert_many(db.cursor(), "INSERT INTO t (a, b)", rows, "ON CONFLICT DO NOTHING")
    300
    >>> db.execute("SELECT min(a), max(a), b FROM t WHERE a = 250").fetchone()
    (250, 250, '249')
    """
    if not rows:
        return 0
    width = len(rows[0])
    one = f"({', '.join('?' * width)})"
    per = max(1, min(ROWS_PER_STATEMENT, 32_766 // width))
    full = len(rows) // per * per
    changed = 0
    if full:
        cursor.executemany(
            f"{head} VALUES {', '.join([one] * per)} {tail}",
            [tuple(chain.from_iterable(rows[i : i + per])) for i in range(0, full, per)],
        )
        changed += cursor.rowcount
    if full < len(rows):
        cursor.executemany(f"{head} VALUES {one} {tail}", rows[full:])
        changed += cursor.rowcount
    return int(changed)
