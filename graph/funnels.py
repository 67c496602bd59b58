"""The lifecycle funnel of a run, and the head of its churn warnings, computed once when the run is
written and kept with it.

:func:`compute_funnel` reads every recorded stage change (seconds at a million customers); the score
pipeline calls it in the transaction that writes the snapshot (:func:`graph.snapshots.write_snapshot`'s
``summarise``) and keeps the result in ``score_run.summary["funnel"]``, so that
:func:`graph.reports.funnel_report` reads one row. Runs written before the funnel was kept have no
``funnel`` in their summary: the report computes it then, as it always did.

The open churn warnings change only when a run is written (merges leave them be), so the run also
keeps how many are open and the first :data:`CHURN_HEAD` of them in the report's order
(``summary["churn"]``, :func:`churn_head`): the ``/funnel`` page's first pages then read only their
own rows instead of sorting every open warning.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from graph.inputs import fetch_columns
from graph.lifecycle import STAGES, funnel
from graph.snapshots import change_t, epoch_sql, score_t, warning_t
from scrm.models import Customer

__all__ = ["CHURN_HEAD", "CHURN_KEY", "SUMMARY_KEY", "churn_head", "compute_funnel", "open_warnings"]

#: where the funnel is kept in ``score_run.summary``
SUMMARY_KEY = "funnel"
#: where the open churn warnings' count and head are kept in ``score_run.summary``
CHURN_KEY = "churn"
#: how many of the open churn warnings (the most valuable customers first) a run keeps in order
CHURN_HEAD = 500
customer_t = Customer.__table__  # type: ignore[attr-defined]


def open_warnings(run_id: int) -> sa.Select[Any]:
    """The open churn warnings with their customer and scores in run ``run_id``, the most valuable
    customers first (:func:`graph.reports.churn_report`'s order)."""
    w, s = warning_t.c, score_t.c
    return (
        sa.select(
            w.customer_id,
            w.created_at,
            w.reasons,
            customer_t.c.display_name,
            s.p_alive,
            s.recency_days,
            s.clv_minor,
            s.monetary_minor,
            s.stage,
        )
        .join_from(warning_t, customer_t, customer_t.c.id == w.customer_id)
        .outerjoin(score_t, sa.and_(s.customer_id == w.customer_id, s.run_id == run_id))
        .where(w.resolved_at.is_(None))
        .order_by(s.clv_minor.desc(), w.customer_id)
    )


def churn_head(conn: Connection, run_id: int) -> dict[str, Any]:
    """``{"open": how many warnings are open, "head": the first CHURN_HEAD customer ids in order}``."""
    total = conn.execute(sa.select(sa.func.count()).where(warning_t.c.resolved_at.is_(None))).scalar_one()
    ids = sa.select(open_warnings(run_id).limit(CHURN_HEAD).subquery().c.customer_id)
    return {"open": int(total), "head": [int(i) for i in conn.execute(ids).scalars()]}


def _maybe(value: float, digits: int) -> float | None:
    return None if value != value else round(value, digits)  # NaN: nobody yet


def compute_funnel(conn: Connection, run_id: int) -> dict[str, Any]:
    """Customers per stage in run ``run_id``, conversion between stages, moves between them and
    time in stage, from every recorded stage change (see :func:`graph.reports.funnel_report`).

    Returns ``{"stages": [...], "conversion": [...], "moves": [...]}``, plain JSON values.
    """
    s, ch = score_t.c, change_t.c
    now_counts: dict[str, int] = dict(
        conn.execute(sa.select(s.stage, sa.func.count()).where(s.run_id == run_id).group_by(s.stage)).all()
    )
    moves = conn.execute(
        sa.select(ch.from_stage, ch.to_stage, sa.func.count())
        .where(ch.from_stage != "")
        .group_by(ch.from_stage, ch.to_stage)
        .order_by(sa.func.count().desc(), ch.from_stage, ch.to_stage)
    ).all()
    code = sa.case({name: i for i, name in enumerate(STAGES)}, value=ch.to_stage, else_=len(STAGES))
    sql_code = str(code.compile(conn, compile_kwargs={"literal_binds": True}))  # constants only
    customers, stage_code, at = fetch_columns(
        conn,
        [("customer_id", "int4"), (sql_code, "int4"), (epoch_sql(conn, "changed_at"), "float8")],
        "FROM stage_change",
        (),
    )
    names = np.array([*STAGES, ""], dtype=object)
    f = funnel(customers, np.full(len(customers), "", dtype=object), names[stage_code], at)
    return {
        "stages": [
            {
                "stage": stage,
                "customers": int(now_counts.get(stage, 0)),
                "entered": int(f.entered.get(stage, 0)),
                "median_days_in_stage": _maybe(f.median_days_in_stage.get(stage, float("nan")), 1),
            }
            for stage in STAGES
        ],
        "conversion": [
            {"from": a, "to": b, "rate": _maybe(rate, 4)} for (a, b), rate in f.conversion.items()
        ],
        "moves": [{"from": a, "to": b, "customers": int(n)} for a, b, n in moves],
    }
