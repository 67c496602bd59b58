"""The dashboard's overview: followers, new and lost followers and interactions per day; campaign runs.

Days are calendar days in the given time zone (its offset at the end of the window: a zone that
changes its offset inside the window shifts those days by the difference). The window ends at the
latest stored interaction (or ``now`` when there is none, or when that is later than ``now``), so a
store filled from old exports still shows its activity.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from graph.snapshots import epoch_sql
from scrm.models import CampaignRun, Customer, Delivery, Follow, Interaction
from scrm.store import Store

__all__ = ["campaign_runs", "overview"]

follow_t = Follow.__table__  # type: ignore[attr-defined]
interaction_t = Interaction.__table__  # type: ignore[attr-defined]
customer_t = Customer.__table__  # type: ignore[attr-defined]
run_t = CampaignRun.__table__  # type: ignore[attr-defined]
delivery_t = Delivery.__table__  # type: ignore[attr-defined]


def _day(conn: Connection, table: str, column: str, offset: int) -> sa.ColumnElement[Any]:
    """SQL for the local day number (days since 1970-01-01) of a stored time (names are ours)."""
    seconds = f"({epoch_sql(conn, f'{table}.{column}')} + {int(offset)})"
    if conn.dialect.name == "postgresql":
        return sa.literal_column(f"CAST(floor({seconds} / 86400.0) AS INTEGER)")
    return sa.literal_column(f"CAST({seconds} / 86400 AS INTEGER)")  # positive times: truncation = floor


def _per_day(
    conn: Connection, column: sa.Column[Any], offset: int, since: datetime, until: datetime
) -> dict[int, int]:
    day = _day(conn, column.table.name, column.name, offset)
    rows = conn.execute(
        sa.select(day, sa.func.count()).where(column >= since, column < until).group_by(day)
    ).all()
    return {int(d): int(n) for d, n in rows}


def overview(store: Store, zone: tzinfo, *, days: int = 30, now: datetime | None = None) -> dict[str, Any]:
    """Totals and a ``days``-day series of new followers, lost followers and interactions.

    Returns
    -------
    dict
        ``customers``, ``followers`` (open follows), ``until`` (end of the window), ``days``: one
        ``{"day", "new", "lost", "interactions"}`` per day (oldest first), ``new``, ``lost`` and
        ``interactions`` (totals over the window).
    """
    now = now or datetime.now(UTC)
    with store.connect() as conn:
        latest = conn.execute(sa.select(sa.func.max(interaction_t.c.occurred_at))).scalar()
        end = min(now, latest) if latest is not None else now
        offset = int((end.astimezone(zone).utcoffset() or timedelta()).total_seconds())
        last_day = (end + timedelta(seconds=offset)).date()
        first_day = last_day - timedelta(days=days - 1)
        since = datetime.combine(first_day, datetime.min.time(), UTC) - timedelta(seconds=offset)
        until = since + timedelta(days=days)
        f, x = follow_t.c, interaction_t.c
        new = _per_day(conn, f.subscribed_at, offset, since, until)
        lost = _per_day(conn, f.unsubscribed_at, offset, since, until)
        acts = _per_day(conn, x.occurred_at, offset, since, until)
        customers = conn.execute(
            sa.select(sa.func.count()).where(customer_t.c.merged_into_id.is_(None))
        ).scalar_one()
        followers = conn.execute(sa.select(sa.func.count()).where(f.unsubscribed_at.is_(None))).scalar_one()
    epoch = date(1970, 1, 1)
    series = []
    for i in range(days):
        day = first_day + timedelta(days=i)
        n = (day - epoch).days
        series.append(
            {
                "day": day.isoformat(),
                "new": new.get(n, 0),
                "lost": lost.get(n, 0),
                "interactions": acts.get(n, 0),
            }
        )
    return {
        "customers": int(customers),
        "followers": int(followers),
        "until": end.isoformat(),
        "days": series,
        "new": sum(d["new"] for d in series),
        "lost": sum(d["lost"] for d in series),
        "interactions": sum(d["interactions"] for d in series),
    }


def campaign_runs(store: Store, *, limit: int = 10) -> list[dict[str, Any]]:
    """The ``limit`` latest campaign runs, newest first: ``run_id``, ``campaign``, ``status``,
    ``started_at``, ``finished_at`` and ``deliveries`` (how many per delivery status)."""
    with store.connect() as conn:
        return _campaign_runs(conn, limit)


def _campaign_runs(conn: Connection, limit: int) -> list[dict[str, Any]]:
    r, d = run_t.c, delivery_t.c
    runs = conn.execute(
        sa.select(r.id, r.campaign, r.status, r.started_at, r.finished_at)
        .order_by(r.started_at.desc(), r.id.desc())
        .limit(limit)
    ).all()
    counts: dict[int, dict[str, int]] = {}
    if runs:
        for run_id, status, n in conn.execute(
            sa.select(d.run_id, d.status, sa.func.count())
            .where(d.run_id.in_([row.id for row in runs]))
            .group_by(d.run_id, d.status)
        ):
            counts.setdefault(run_id, {})[status] = int(n)
    return [
        {
            "run_id": row.id,
            "campaign": row.campaign,
            "status": row.status,
            "started_at": row.started_at.isoformat(),
            "finished_at": row.finished_at.isoformat() if row.finished_at else None,
            "deliveries": counts.get(row.id, {}),
        }
        for row in runs
    ]
