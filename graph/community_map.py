"""The community map's data: a bounded sample of the latest run's communities as a graph.

The largest ``communities`` communities are drawn; from each, its leaders and strongest bridges first,
then the members of highest social value (from the leaderboard's ranking, :mod:`graph.rankings`),
``nodes`` customers at most in all, with the ties
(:class:`~scrm.models.Relation`) between the customers drawn. The size of a node follows the square
root of its influence. Whatever the store's size, it reads a few hundred customers and their ties.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sqlalchemy as sa

from graph.rankings import ranking
from graph.reports import community_report
from graph.snapshots import score_t
from scrm.models import Customer, Relation
from scrm.store import Store

__all__ = ["community_map"]

customer_t = Customer.__table__  # type: ignore[attr-defined]
relation_t = Relation.__table__  # type: ignore[attr-defined]


def community_map(store: Store, *, nodes: int = 300, communities: int = 12) -> dict[str, Any]:
    """Nodes (``id``, ``name``, ``community``, ``category``, ``leader``, ``bridge``, ``influence``,
    ``size``), ``links`` (``source``, ``target``) and ``categories`` (one per community drawn)."""
    run, drawn = community_report(store, limit=communities)
    order = {c["community_id"]: i for i, c in enumerate(drawn)}
    chosen: list[int] = []
    for c in drawn:  # leaders and bridges first: the map is about them
        chosen += [p["id"] for p in c["leaders"]] + [p["id"] for p in c["top_bridges"]]
    chosen = list(dict.fromkeys(chosen))[:nodes]
    s = score_t.c
    with store.connect() as conn:
        room = nodes - len(chosen)
        if room > 0 and order:  # the best of the drawn communities by social value: the leaderboard's
            ranked = ranking(conn, run.id, run.finished_at, "social_value")  # ranking, kept in memory
            taken = set(chosen)
            for customer in ranked.customer_ids[np.isin(ranked.community_ids, list(order))]:
                if len(chosen) >= nodes:
                    break
                if int(customer) not in taken:
                    chosen.append(int(customer))
        rows = (
            conn.execute(
                sa.select(s.customer_id, s.community_id, s.is_leader, s.is_bridge, s.influence)
                .add_columns(customer_t.c.display_name)
                .join_from(score_t, customer_t, customer_t.c.id == s.customer_id)
                .where(s.run_id == run.id, s.customer_id.in_(chosen))
            ).all()
            if chosen
            else []
        )
        r = relation_t.c
        ties = (
            conn.execute(
                sa.select(r.source_id, r.target_id)
                .where(r.source_id.in_(chosen), r.target_id.in_(chosen), r.source_id != r.target_id)
                .limit(nodes * 10)
            ).all()
            if chosen
            else []
        )
    top = max((float(row.influence) for row in rows), default=0.0) or 1.0
    out_nodes = [
        {
            "id": int(row.customer_id),
            "name": row.display_name,
            "community": row.community_id,
            "category": order.get(row.community_id, len(order)),
            "leader": bool(row.is_leader),
            "bridge": bool(row.is_bridge),
            "influence": float(row.influence),
            "size": round(6 + 28 * (max(float(row.influence), 0.0) / top) ** 0.5, 1),
        }
        for row in sorted(rows, key=lambda row: (order.get(row.community_id, len(order)), -row.influence))
    ]
    pairs = {(min(a, b), max(a, b)) for a, b in ties}
    return {
        **run.as_dict(),
        "categories": [
            {"name": f"{c['community_id']}" + (f" {c['label']}" if c["label"] else "")} for c in drawn
        ],
        "nodes": out_nodes,
        "links": [{"source": a, "target": b} for a, b in sorted(pairs)],
    }
