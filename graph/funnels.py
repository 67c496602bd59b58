"""The lifecycle funnel of a run, computed once when the run is written and kept with it.

:func:`compute_funnel` reads every recorded stage change (seconds at a million customers); the score
pipeline calls it in the transaction that writes the snapshot (:func:`graph.snapshots.write_snapshot`'s
``summarise``) and keeps the result in ``score_run.summary["funnel"]``, so that
:func:`graph.reports.funnel_report` reads one row. Runs written before the funnel was kept have no
``funnel`` in their summary: the report computes it then, as it always did.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from graph.inputs import fetch_columns
from graph.lifecycle import STAGES, funnel
from graph.snapshots import change_t, epoch_sql, score_t

__all__ = ["SUMMARY_KEY", "compute_funnel"]

#: where the funnel is kept in ``score_run.summary``
SUMMARY_KEY = "funnel"


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
