"""Reads for the web API beyond the CLI's reports: one customer's 360° view with its score, stage and
delivery history, customer filters on the latest scores, and the counts that page the leaderboard and a
community's members.

Every function that reads scores uses the latest finished run and raises
:class:`~scrm.errors.NoScores` when there is none (except :func:`customer_view`, which shows a
customer without scores with empty histories).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from graph import rankings
from graph.reports import latest_run, recent_runs
from graph.snapshots import change_t, community_t, run_t, score_t
from scrm.models import CampaignRun, Delivery
from scrm.queries import customer_record
from scrm.store import Store

__all__ = ["ScoreFilter", "community_count", "customer_view", "scored_count", "scored_filter"]

delivery_t = Delivery.__table__  # type: ignore[attr-defined]
campaign_run_t = CampaignRun.__table__  # type: ignore[attr-defined]


def _score_history(conn: Connection, customer_id: int, limit: int) -> list[dict[str, Any]]:
    """The customer's scores in the last ``limit`` finished runs, newest first."""
    recent = recent_runs(limit)
    s = score_t.c
    rows = conn.execute(
        sa.select(
            run_t.c.id.label("run_id"),
            run_t.c.as_of,
            s.social_value,
            s.influence,
            s.reach_two_hop,
            s.clv_minor,
            s.community_id,
            s.is_leader,
            s.is_bridge,
            s.stage,
        )
        .join_from(score_t, run_t, run_t.c.id == s.run_id)
        .where(s.customer_id == customer_id, s.run_id.in_(recent))
        .order_by(run_t.c.id.desc())
    ).all()
    return [{**r._mapping, "social_value": round(float(r.social_value), 2)} for r in rows]


def _stage_history(conn: Connection, customer_id: int, limit: int) -> list[dict[str, Any]]:
    """The customer's lifecycle stage changes, newest first."""
    ch = change_t.c
    query = (
        sa.select(ch.from_stage, ch.to_stage, ch.changed_at, ch.run_id, ch.reason)
        .where(ch.customer_id == customer_id)
        .order_by(ch.changed_at.desc(), ch.id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def _deliveries(conn: Connection, customer_id: int, limit: int) -> list[dict[str, Any]]:
    """The campaign messages planned for or sent to the customer, newest first (payloads left out)."""
    d, r = delivery_t.c, campaign_run_t.c
    query = (
        sa.select(
            d.id,
            r.campaign,
            d.run_id,
            r.run_key,
            d.variant,
            d.channel,
            d.status,
            d.reason,
            d.errcode,
            d.due_at,
            d.sent_at,
        )
        .join_from(delivery_t, campaign_run_t, r.id == d.run_id)
        .where(d.customer_id == customer_id)
        .order_by(d.id.desc())
        .limit(limit)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


def customer_view(store: Store, customer_id: int, *, limit: int = 50) -> dict[str, Any]:
    """One customer's 360° view: :func:`scrm.queries.customer_record` (identities, merges, follows,
    tags, interactions, purchases) and the latest ``limit`` scores (one per run, newest first), stage
    changes and campaign deliveries. A merged customer is answered with the one it was merged into.
    """
    record = customer_record(store, customer_id, limit=limit)
    kept = int(record["id"])
    with store.connect() as conn:
        scores = _score_history(conn, kept, limit)
        record["score"] = scores[0] if scores else None
        record["score_history"] = scores
        record["stage_history"] = _stage_history(conn, kept, limit)
        record["deliveries"] = _deliveries(conn, kept, limit)
    return record


@dataclass(frozen=True)
class ScoreFilter:
    """Conditions on the latest scores: lifecycle ``stage``, ``community`` id, ``min_social_value``
    (0..100) and ``role`` (``leader`` or ``bridge``); ``None`` leaves a condition out."""

    stage: str | None = None
    community: int | None = None
    min_social_value: float | None = None
    role: str | None = None

    @property
    def empty(self) -> bool:
        return all(v is None for v in (self.stage, self.community, self.min_social_value, self.role))

    def where(self, run_id: int) -> list[sa.ColumnElement[bool]]:
        s = score_t.c
        where: list[sa.ColumnElement[bool]] = [s.run_id == run_id]
        if self.stage is not None:
            where.append(s.stage == self.stage)
        if self.community is not None:
            where.append(s.community_id == self.community)
        if self.min_social_value is not None:
            where.append(s.social_value >= self.min_social_value)
        if self.role == "leader":
            where.append(s.is_leader.is_(True))
        elif self.role == "bridge":
            where.append(s.is_bridge.is_(True))
        return where


def scored_filter(store: Store, conditions: ScoreFilter) -> sa.Select[Any] | None:
    """A select of the ids of the customers whose latest scores meet ``conditions`` (for
    :func:`scrm.queries.list_customers`' ``within``); ``None`` when there are no conditions."""
    if conditions.empty:
        return None
    with store.connect() as conn:
        run = latest_run(conn)
    return sa.select(score_t.c.customer_id).where(*conditions.where(run.id))


def scored_count(store: Store, *, community: int | None = None) -> int:
    """How many customers the latest run scored (in ``community`` when given).

    Counted in the run's ranking held in memory (:mod:`graph.rankings`, which the leaderboard's page
    reads anyway): counting a million rows on every page would cost 40-80 ms, a community's members
    a scan of the run.
    """
    with store.connect() as conn:
        run = latest_run(conn)
        ranked = rankings.ranking(conn, run.id, run.finished_at, "social_value")
    return ranked.count(community)


def community_count(store: Store) -> int:
    """How many communities the latest run found."""
    with store.connect() as conn:
        run = latest_run(conn)
        where = community_t.c.run_id == run.id
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(community_t).where(where)).scalar_one()
        )
