"""The rescore's inputs: what the store knows about customers, read into arrays over the graph's nodes.

:func:`load_purchases` and :func:`load_followers` read with the driver's own cursor (no ORM rows), in
chunks, and map customer ids to the node index of the :class:`~graph.build.SocialGraph`; customers
that are not nodes (merged away) are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from graph import snapshots
from graph.build import SocialGraph
from scrm.errors import StoreError
from scrm.purchases import utc_text

__all__ = ["ScoreInputs", "fetch_columns", "load_followers", "load_purchases"]


@dataclass(frozen=True)
class ScoreInputs:
    """What a rescore reads from the store, as arrays over the graph's nodes."""

    graph: SocialGraph
    purchase_index: np.ndarray  # node index per purchase
    purchase_times: np.ndarray  # unix seconds
    purchase_amounts: np.ndarray  # minor units
    is_follower: np.ndarray
    previous: snapshots.Previous = field(default_factory=lambda: snapshots.Previous(None))
    other_currency_purchases: int = 0


#: numpy type and PostgreSQL binary send function of each column type :func:`fetch_columns` reads
_TYPES = {
    "int4": (np.int32, "int4send"),
    "int8": (np.int64, "int8send"),
    "float8": (np.float64, "float8send"),
}


def fetch_columns(
    conn: Connection, columns: Sequence[tuple[str, str]], rest: str, params: tuple[Any, ...]
) -> list[np.ndarray]:
    """``SELECT <columns> <rest>`` as one numpy array per column, without a Python object per value
    where the driver allows it.

    ``columns`` are (SQL expression, type) pairs, type one of ``int4``, ``int8``, ``float8``; the
    expressions must not be NULL. ``rest`` is the FROM/WHERE part, with ``%s`` placeholders for
    ``params`` (always bound). PostgreSQL aggregates each column into one binary string
    (``string_agg(int4send(expr), '')``: every column of a row is fed in the same scan order), which
    numpy reads in place (up to PostgreSQL's 1 GB per value: over 100 million rows); SQLite's rows
    come in chunks from the driver's cursor.

    Examples
    --------
    >>> from scrm.store import Store
    >>> store = Store("sqlite://"); _ = store.upgrade()
    >>> with store.connect() as conn:
    ...     _ = conn.exec_driver_sql("INSERT INTO customer (display_name, created_at) VALUES "
    ...                              "('Li', '2026-05-01 00:00:00'), ('Wang', '2026-05-02 00:00:00')")
    ...     ids, half = fetch_columns(conn, [("id", "int4"), ("id / 2.0", "float8")],
    ...                               "FROM customer WHERE display_name <> %s ORDER BY id", ("",))
    >>> ids, half
    (array([1, 2], dtype=int32), array([0.5, 1. ]))
    """
    if conn.dialect.name != "postgresql":
        sql = f"SELECT {', '.join(expr for expr, _ in columns)} {rest}"
        # One float64 matrix per chunk is twice as fast as a transpose into per-column arrays; it
        # holds integers exactly up to 2**53.
        chunks = [np.array(rows, dtype=np.float64) for rows in snapshots.fetch_chunks(conn, sql, params)]
        table = np.concatenate(chunks) if chunks else np.empty((0, len(columns)))
        return [table[:, i].astype(_TYPES[t][0]) for i, (_, t) in enumerate(columns)]
    aggregates = ", ".join(f"string_agg({_TYPES[t][1]}(({expr})::{t}), ''::bytea)" for expr, t in columns)
    raw: Any = conn.connection.driver_connection
    with raw.cursor(binary=True) as cur:
        values = cur.execute(f"SELECT {aggregates} {rest}", params).fetchone()
    arrays = [
        np.frombuffer(value or b"", dtype=np.dtype(_TYPES[t][0]).newbyteorder(">")).astype(_TYPES[t][0])
        for value, (_, t) in zip(values, columns, strict=True)
    ]
    if len({len(a) for a in arrays}) > 1:  # string_agg skips NULLs: the columns would not line up
        raise StoreError(f"fetch_columns: a NULL in {[expr for expr, _ in columns]} {rest}")
    return arrays


def load_purchases(
    conn: Connection, customer_ids: np.ndarray, *, currency: str, now: datetime
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The purchases of these customers in one currency, as arrays.

    Returns (node index per purchase, unix seconds, amount in minor units, purchases left out
    because they are in another currency). Only positive amounts up to ``now``; purchases of
    customers not in ``customer_ids`` (sorted) are dropped.
    """
    who, times, amounts = fetch_columns(
        conn,
        [
            ("customer_id", "int4"),
            (snapshots.epoch_sql(conn, "occurred_at"), "float8"),
            ("amount_minor", "int8"),
        ],
        "FROM purchase WHERE currency = %s AND amount_minor > 0 AND occurred_at <= %s",
        (currency, _bound_time(conn, now)),
    )
    other = conn.execute(
        sa.text("SELECT count(*) FROM purchase WHERE currency <> :currency AND amount_minor > 0"),
        {"currency": currency},
    ).scalar_one()
    index, found = _node_index(customer_ids, who.astype(np.int64))
    return index[found], times[found], amounts[found].astype(np.float64), int(other)


def load_followers(conn: Connection, customer_ids: np.ndarray, *, now: datetime) -> np.ndarray:
    """Per node: True when the customer follows one of our accounts (an open follow row at ``now``)."""
    (ids,) = fetch_columns(
        conn,
        [("customer_id", "int4")],
        "FROM follow WHERE unsubscribed_at IS NULL AND subscribed_at <= %s",
        (_bound_time(conn, now),),
    )
    index, found = _node_index(customer_ids, ids.astype(np.int64))
    follower = np.zeros(len(customer_ids), dtype=bool)
    follower[index[found]] = True
    return follower


def _bound_time(conn: Connection, moment: datetime) -> datetime | str:
    return utc_text(moment) if conn.dialect.name == "sqlite" else moment


def _node_index(customer_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(customer_ids) == 0:
        return np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
    index = np.minimum(np.searchsorted(customer_ids, ids), len(customer_ids) - 1)
    return index, customer_ids[index] == ids
