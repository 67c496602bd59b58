"""Reading the latest score snapshot: top lists, communities, one customer explained, funnel, churn.

Every function reads the latest finished run (``score_run.status = 'done'``) and raises
:class:`~scrm.errors.NoScores` ("run `scrm score` first") when there is none. Results are plain
dicts and lists, ready for ``--json``.

A component's *points* in the social value are its normalised value (a percentile rank, 0..1) x its
weight (the run's ``[scoring.weights]``, normalised to sum 1) x 100; the points add up to the score.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from graph import rankings
from graph.funnels import CHURN_KEY, SUMMARY_KEY, compute_funnel, open_warnings
from graph.snapshots import (
    change_t,
    community_t,
    run_t,
    score_t,
    warning_t,
)
from scrm.errors import NoScores, NotFound
from scrm.models import Customer
from scrm.store import Store

__all__ = [
    "COMPONENTS",
    "TOP_BY",
    "RunInfo",
    "churn_report",
    "community_report",
    "explain_customer",
    "funnel_report",
    "latest_run",
    "recent_runs",
    "top_customers",
]

customer_t = Customer.__table__  # type: ignore[attr-defined]

#: component of the social value -> (column of its raw value, column of its normalised value)
COMPONENTS = {
    "influence": ("influence", "n_influence"),
    "reach": ("reach_two_hop", "n_reach"),
    "community": ("bridge_score", "n_community"),
    "lifetime_value": ("clv_minor", "n_value"),
}
#: ``scrm top --by`` choices -> the column ranked on
TOP_BY = {
    "social_value": "social_value",
    "influence": "influence",
    "clv": "clv_minor",
    "reach": "reach_two_hop",
}
TopBy = Literal["social_value", "influence", "clv", "reach"]
_ROW_COLUMNS = (
    "customer_id",
    "social_value",
    "influence",
    "reach_direct",
    "reach_two_hop",
    "referral_reach",
    "community_id",
    "is_leader",
    "is_bridge",
    "clv_minor",
    "stage",
)


@dataclass(frozen=True)
class RunInfo:
    """The run a report reads: its id, "as of" time, social-value weights (sum 1), currency, summary."""

    id: int
    as_of: datetime
    finished_at: datetime | None
    weights: dict[str, float]
    currency: str
    summary: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.id,
            "as_of": self.as_of.isoformat(),
            "currency": self.currency,
            "weights": self.weights,
        }


def latest_run(conn: Connection) -> RunInfo:
    """The latest finished run; :class:`NoScores` when there is none."""
    row = conn.execute(
        sa.select(run_t).where(run_t.c.status == "done").order_by(run_t.c.id.desc()).limit(1)
    ).first()
    if row is None:
        raise NoScores("there are no scores yet: run `scrm score` first")
    parameters = json.loads(row.parameters)
    weights = parameters.get("scoring", {}).get("weights", {})
    total = sum(weights.values())
    normalised = {k: (v / total if total else 0.0) for k, v in weights.items()}
    currency = parameters.get("currency", "")
    return RunInfo(row.id, row.as_of, row.finished_at, normalised, currency, json.loads(row.summary))


def _points(run: RunInfo, row: Any) -> dict[str, float]:
    return {
        name: round(float(getattr(row, normalised)) * run.weights.get(name, 0.0) * 100, 2)
        for name, (_, normalised) in COMPONENTS.items()
    }


def _row(run: RunInfo, row: Any) -> dict[str, Any]:
    data = {name: getattr(row, name) for name in _ROW_COLUMNS}
    data["name"] = row.display_name
    data["social_value"] = round(float(row.social_value), 2)
    points = _points(run, row)
    data["points"] = points
    data["main"] = [name for name, value in sorted(points.items(), key=lambda kv: -kv[1]) if value > 0][:2]
    return data


def top_customers(
    store: Store,
    *,
    by: TopBy = "social_value",
    community: int | None = None,
    limit: int = 20,
    offset: int = 0,
) -> tuple[RunInfo, list[dict[str, Any]]]:
    """The customers ranked highest by ``by`` in the latest run (from the ``offset``-th on), each with
    its points per component.

    The page's customer ids come from the run's ranking held in memory (:mod:`graph.rankings`: read
    once per process and run, then any page at any depth is a slice); only that page's rows are read.
    """
    with store.connect() as conn:
        run = latest_run(conn)
        ranked = rankings.ranking(conn, run.id, run.finished_at, TOP_BY[by])
        ids = ranked.page(community=community, limit=limit, offset=offset)
        s = score_t.c
        query = (
            sa.select(*(s[name] for name in _ROW_COLUMNS), *(s[n] for _, n in COMPONENTS.values()))
            .add_columns(customer_t.c.display_name)
            .join_from(score_t, customer_t, customer_t.c.id == s.customer_id)
        )
        found: dict[int, Any] = {}
        for start in range(0, len(ids), 10_000):  # bound parameters: SQLite takes 32,766 at most
            chunk = ids[start : start + 10_000]
            for row in conn.execute(query.where(s.run_id == run.id, s.customer_id.in_(chunk))):
                found[row.customer_id] = row
    return run, [_row(run, found[i]) for i in ids if i in found]


def community_report(
    store: Store,
    *,
    bridges: int = 3,
    limit: int | None = None,
    offset: int = 0,
    community: int | None = None,
) -> tuple[RunInfo, list[dict[str, Any]]]:
    """The latest run's communities, largest first, with their leaders and strongest bridges: all of
    them, ``limit`` from the ``offset``-th, or only ``community``."""
    with store.connect() as conn:
        run = latest_run(conn)
        c = community_t.c
        query = sa.select(community_t).where(c.run_id == run.id).order_by(c.size.desc(), c.community_id)
        if community is not None:
            query = query.where(c.community_id == community)
        if limit is not None:
            query = query.limit(limit).offset(offset)
        rows = conn.execute(query).all()
        s = score_t.c
        people_ids = {i for r in rows for i in json.loads(r.leaders)}
        bridge_query = (
            sa.select(s.community_id, s.customer_id, s.bridge_score)
            .where(s.run_id == run.id, s.is_bridge)
            .order_by(s.community_id, s.bridge_score.desc(), s.customer_id)
        )
        if community is not None or limit is not None:
            bridge_query = bridge_query.where(s.community_id.in_([r.community_id for r in rows]))
        bridge_rows = conn.execute(bridge_query).all()
        top_bridges: dict[int, list[tuple[int, float]]] = {}
        for community, customer, score in bridge_rows:
            chosen = top_bridges.setdefault(community, [])
            if len(chosen) < bridges:
                chosen.append((customer, float(score)))
                people_ids.add(customer)
        names = _names(conn, sorted(people_ids))
    out = []
    for r in rows:
        out.append(
            {
                "community_id": r.community_id,
                "label": r.label,
                "size": r.size,
                "modularity_share": round(r.modularity_share, 4),
                "leaders": [{"id": i, "name": names.get(i, "")} for i in json.loads(r.leaders)],
                "bridges": r.bridges,
                "top_bridges": [
                    {"id": i, "name": names.get(i, ""), "bridge_score": round(b, 3)}
                    for i, b in top_bridges.get(r.community_id, [])
                ],
            }
        )
    return run, out


def _names(conn: Connection, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    c = customer_t.c
    return {int(i): n for i, n in conn.execute(sa.select(c.id, c.display_name).where(c.id.in_(ids)))}


def _kept_customer(conn: Connection, customer_id: int) -> tuple[int, int | None]:
    """The customer to explain: the given one, or the one it was merged into (and the given id)."""
    c = customer_t.c
    seen = customer_id
    for _ in range(100):  # merges form short chains
        row = conn.execute(sa.select(c.merged_into_id).where(c.id == seen)).first()
        if row is None:
            raise NotFound(f"there is no customer {customer_id}")
        if row.merged_into_id is None:
            return seen, (customer_id if seen != customer_id else None)
        seen = row.merged_into_id
    return seen, customer_id


def recent_runs(count: int) -> sa.ScalarSelect[Any]:
    """The ids of the last ``count`` finished runs, a subquery: one customer's scores are read through
    the primary key (run_id, customer_id), run by run."""
    return (
        sa.select(run_t.c.id)
        .where(run_t.c.status == "done")
        .order_by(run_t.c.id.desc())
        .limit(count)
        .scalar_subquery()
    )


def explain_customer(store: Store, customer_id: int, *, history: int = 5) -> dict[str, Any]:
    """Why a customer scores what they score in the latest run.

    Each component's raw value, normalised value and points; RFM, P(alive), expected purchases and
    lifetime value; the lifecycle stage with when and why it was entered; an open churn warning; the
    social value and stage in the last ``history`` runs (the trend).
    """
    with store.connect() as conn:
        run = latest_run(conn)
        kept, merged_from = _kept_customer(conn, customer_id)
        s = score_t.c
        row = conn.execute(sa.select(score_t).where(s.run_id == run.id, s.customer_id == kept)).first()
        if row is None:
            raise NotFound(
                f"customer {kept} is not in the latest scores (run {run.id}, as of {run.as_of:%Y-%m-%d}): "
                "it came after that run; run `scrm score` again"
            )
        name = conn.execute(sa.select(customer_t.c.display_name).where(customer_t.c.id == kept)).scalar_one()
        ch = change_t.c
        entered = conn.execute(
            sa.select(ch.from_stage, ch.changed_at, ch.reason)
            .where(ch.customer_id == kept)
            .order_by(ch.changed_at.desc(), ch.id.desc())
            .limit(1)
        ).first()
        w = warning_t.c
        warning = conn.execute(
            sa.select(w.created_at, w.reasons).where(w.customer_id == kept, w.resolved_at.is_(None))
        ).first()
        recent = recent_runs(history)
        trend = conn.execute(
            sa.select(run_t.c.id, run_t.c.as_of, s.social_value, s.stage)
            .join_from(score_t, run_t, run_t.c.id == s.run_id)
            .where(s.customer_id == kept, s.run_id.in_(recent))
            .order_by(run_t.c.id.desc())
        ).all()
    points = _points(run, row)
    components = [
        {
            "component": component,
            "value": getattr(row, raw) + (1 if component == "community" and row.is_leader else 0),
            "normalised": round(float(getattr(row, normalised)), 4),
            "weight": round(run.weights.get(component, 0.0), 4),
            "points": points[component],
        }
        for component, (raw, normalised) in COMPONENTS.items()
    ]
    components.sort(key=lambda c: -c["points"])
    return {
        **run.as_dict(),
        "customer_id": kept,
        "merged_from": merged_from,
        "name": name,
        "social_value": round(float(row.social_value), 2),
        "customers": run.summary.get("customers"),
        "components": components,
        "influence": row.influence,
        "reach_direct": row.reach_direct,
        "reach_two_hop": row.reach_two_hop,
        "referral_reach": row.referral_reach,
        "community_id": row.community_id,
        "is_leader": row.is_leader,
        "is_bridge": row.is_bridge,
        "rfm": row.rfm,
        "recency_days": row.recency_days,
        "frequency": row.frequency,
        "monetary_minor": row.monetary_minor,
        "p_alive": row.p_alive,
        "expected_purchases": row.expected_purchases,
        "clv_minor": row.clv_minor,
        "stage": row.stage,
        "stage_since": entered.changed_at.isoformat() if entered else None,
        "stage_from": entered.from_stage if entered else None,
        "stage_reason": entered.reason if entered else "",
        "churn_warning": (
            {"since": warning.created_at.isoformat(), "reasons": json.loads(warning.reasons)}
            if warning
            else None
        ),
        "history": [
            {
                "run_id": r.id,
                "as_of": r.as_of.isoformat(),
                "social_value": round(r.social_value, 2),
                "stage": r.stage,
            }
            for r in trend
        ],
    }


def funnel_report(store: Store) -> dict[str, Any]:
    """Customers per stage now, conversion between stages, moves between them and time in stage.

    Conversion and time in stage come from the recorded stage changes through
    :func:`graph.lifecycle.funnel`: the conversion a -> b is the share of the customers who ever
    entered a that entered b later; time in stage the median length of the stays that ended.
    ``moves`` counts the recorded changes a -> b (a customer's next stage after a).

    The funnel is the one computed when the run was written (kept in its summary, one row to
    read: :mod:`graph.funnels`); for a run written before it was kept, it is computed now.
    """
    with store.connect() as conn:
        run = latest_run(conn)
        kept = run.summary.get(SUMMARY_KEY)
        data = kept if isinstance(kept, dict) else compute_funnel(conn, run.id)
    return {**run.as_dict(), **data}


def churn_report(
    store: Store, *, limit: int | None = None, offset: int = 0
) -> tuple[RunInfo, int, list[dict[str, Any]]]:
    """Open churn warnings: how many, and ``limit`` of them from the ``offset``-th (the most valuable
    customers first) with their reasons.

    A run keeps the count and the first warnings in order (:func:`graph.funnels.churn_head`): pages
    within them read only their own rows; deeper pages, and older runs, sort every open warning."""
    with store.connect() as conn:
        run = latest_run(conn)
        query = open_warnings(run.id)
        kept = run.summary.get(CHURN_KEY)
        kept = kept if isinstance(kept, dict) else {"open": -1, "head": []}
        head: list[int] = kept["head"]
        covered = len(head) == kept["open"] or (limit is not None and offset + limit <= len(head))
        if covered:  # kept with the run: read only this page's rows
            total = kept["open"]
            page = head[offset:] if limit is None else head[offset : offset + limit]
            rows = conn.execute(query.where(warning_t.c.customer_id.in_(page))).all()
        else:
            total = conn.execute(
                sa.select(sa.func.count()).where(warning_t.c.resolved_at.is_(None))
            ).scalar_one()
            if limit is not None:
                query = query.limit(limit)
            rows = conn.execute(query.offset(offset) if offset else query).all()
    return (
        run,
        int(total),
        [
            {
                "customer_id": r.customer_id,
                "name": r.display_name,
                "since": r.created_at.isoformat(),
                "reasons": json.loads(r.reasons),
                "p_alive": r.p_alive,
                "days_since_purchase": r.recency_days,
                "clv_minor": r.clv_minor,
                "spent_minor": r.monetary_minor,
                "stage": r.stage,
            }
            for r in rows
        ],
    )
