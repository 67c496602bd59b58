"""The rescore's inputs: what the store knows about customers, read into arrays over the graph's nodes.

:func:`load_purchases` and :func:`load_followers` read with the driver's own cursor (no ORM rows), in
chunks, and map customer ids to the node index of the :class:`~graph.build.SocialGraph`; customers
that are not nodes (merged away) are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from graph import snapshots
from graph.build import SocialGraph

__all__ = ["ScoreInputs", "load_followers", "load_purchases"]


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


def _bound_time(conn: Connection, moment: datetime) -> Any:
    return (
        moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
        if conn.dialect.name == "sqlite"
        else moment
    )


def load_purchases(
    conn: Connection, customer_ids: np.ndarray, *, currency: str, now: datetime
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The purchases of these customers in one currency, as arrays.

    Returns (node index per purchase, unix seconds, amount in minor units, purchases left out
    because they are in another currency). Only positive amounts up to ``now``; purchases of
    customers not in ``customer_ids`` (sorted) are dropped.
    """
    sql = (
        f"SELECT customer_id, {snapshots.epoch_sql(conn, 'occurred_at')}, amount_minor FROM purchase "
        "WHERE currency = %s AND amount_minor > 0 AND occurred_at <= %s"
    )
    chunks = [
        np.array(chunk, dtype=np.float64)
        for chunk in snapshots.fetch_chunks(conn, sql, (currency, _bound_time(conn, now)))
    ]
    data = np.concatenate(chunks) if chunks else np.empty((0, 3))
    other = conn.execute(
        sa.text("SELECT count(*) FROM purchase WHERE currency <> :currency AND amount_minor > 0"),
        {"currency": currency},
    ).scalar_one()
    index, found = _node_index(customer_ids, data[:, 0].astype(np.int64))
    return index[found], data[found, 1], data[found, 2], int(other)


def load_followers(conn: Connection, customer_ids: np.ndarray, *, now: datetime) -> np.ndarray:
    """Per node: True when the customer follows one of our accounts (an open follow row at ``now``)."""
    sql = "SELECT DISTINCT customer_id FROM follow WHERE unsubscribed_at IS NULL AND subscribed_at <= %s"
    ids = [row[0] for chunk in snapshots.fetch_chunks(conn, sql, (_bound_time(conn, now),)) for row in chunk]
    index, found = _node_index(customer_ids, np.array(ids, dtype=np.int64))
    follower = np.zeros(len(customer_ids), dtype=bool)
    follower[index[found]] = True
    return follower


def _node_index(customer_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(customer_ids) == 0:
        return np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
    index = np.minimum(np.searchsorted(customer_ids, ids), len(customer_ids) - 1)
    return index, customer_ids[index] == ids
