"""The rescore: everything the store knows about customers turned into one dated score snapshot.

:func:`rescore` reads the relationship graph (:func:`graph.build.load_graph`), the purchases and the
open follows from the store into arrays, runs the scoring stages in order and writes the snapshot
through :mod:`graph.snapshots` (one transaction: the previous snapshot stays current until it
commits). The stages, each over all customers at once:

1. influence: weighted PageRank (:func:`graph.influence.pagerank`);
2. reach: direct and two-hop audience, referral reach (:mod:`graph.reach`);
3. communities: detection, ids kept stable against the previous run, leaders and bridges
   (:mod:`graph.communities`);
4. customer value: RFM, P(alive), expected purchases and lifetime value (:mod:`graph.value`);
5. lifecycle: stages with the previous run's stages, churn warnings (:mod:`graph.lifecycle`);
6. social value: the weighted combination of influence, reach, community role and lifetime value
   (:mod:`graph.social`), weights from ``[scoring.weights]``.

Purchases are read in one currency, ``[import] default_currency``; orders in other currencies are
left out of customer value (counted in the run's summary), because amounts in different units cannot
be added. Refunds (negative amounts) are not purchases: they are left out, not netted. Purchases on
the same day in ``[scrm] timezone`` count as one (the repeat-purchase convention of BG/NBD). Purchases and
follows dated after ``now`` are ignored; ties dated after it count as new (no decay), so a rescore
"as of" a past time sees the purchases and follows known then.

The community-role component of the social value is a customer's bridge score (the share of their
ties that reach other communities) plus 1 for a community leader: leaders rank first, then bridges.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from graph import snapshots
from graph.build import SocialGraph, load_graph
from graph.communities import Communities, community_roles, detect_communities, stabilize_labels
from graph.funnels import CHURN_KEY, SUMMARY_KEY, churn_head, compute_funnel
from graph.influence import pagerank
from graph.inputs import ScoreInputs, load_followers, load_purchases
from graph.lifecycle import classify_lifecycle
from graph.reach import reach, referral_reach
from graph.social import social_value
from graph.value import customer_value, summarize_purchases
from scrm.config import Settings
from scrm.errors import StoreError
from scrm.models import Customer, utcnow
from scrm.store import Store

__all__ = [
    "RESCORE_STEPS",
    "Progress",
    "ScoreRunReport",
    "StageTimer",
    "load_inputs",
    "rescore",
    "score_arrays",
]

#: callback (stage description, stages done, stages in all) for progress bars
Progress = Callable[[str, int, int], None]
#: what :func:`rescore` reports progress on, in order
RESCORE_STEPS = (
    "loading the graph",
    "loading purchases and follows",
    "influence (PageRank)",
    "reach",
    "communities",
    "customer value",
    "lifecycle",
    "social value",
    "writing the snapshot",
)


@dataclass(frozen=True)
class ScoreRunReport:
    """What a rescore found; ``seconds`` per stage in ``timings``."""

    run_id: int
    as_of: datetime
    customers: int
    edges: int
    purchases: int
    followers: int
    communities: int
    modularity: float
    value_method: str  # how customer value was estimated (graph.value.customer_value's method)
    stages: dict[str, int]
    stage_changes: int
    new_churn_warnings: int
    resolved_churn_warnings: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        return data


def _modularity_shares(graph: SocialGraph, labels: np.ndarray, resolution: float) -> dict[int, float]:
    """Each community's term of the modularity on the undirected weighted collapse of the graph.

    Q = sum_c [ L_c / m - resolution * (d_c / 2m)^2 ] (Newman & Girvan 2004), where m is the total
    edge weight, L_c the weight inside c and d_c the summed strength of its members; the shares add
    up to the graph's modularity (customers without ties, label -1, have no strength).
    """
    present = np.unique(labels[labels >= 0])
    m = float(graph.weight.sum())
    if m == 0 or len(present) == 0:
        return {int(c): 0.0 for c in present}
    dense = np.searchsorted(present, labels)  # stable ids can be sparse
    src, dst = dense[graph.src], dense[graph.dst]
    inside = src == dst
    internal = np.bincount(src[inside], weights=graph.weight[inside], minlength=len(present))
    strength = np.bincount(src, weights=graph.weight, minlength=len(present)) + np.bincount(
        dst, weights=graph.weight, minlength=len(present)
    )
    share = internal / m - resolution * (strength / (2 * m)) ** 2
    return {int(c): float(share[i]) for i, c in enumerate(present.tolist())}


def _names(conn: Connection, customer_ids: list[int]) -> dict[int, str]:
    if not customer_ids:
        return {}
    c = Customer.__table__.c  # type: ignore[attr-defined]
    rows = conn.execute(sa.select(c.id, c.display_name).where(c.id.in_(customer_ids)))
    return {int(i): name for i, name in rows}


class StageTimer:
    """Times each stage of a rescore (``timings``) and reports its start to ``progress``."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.progress is not None:
            self.progress(name, RESCORE_STEPS.index(name), len(RESCORE_STEPS))
        start = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - start, 3)


def rescore(
    store: Store, settings: Settings, *, now: datetime | None = None, progress: Progress | None = None
) -> ScoreRunReport:
    """Score every customer and store the result as a new dated snapshot.

    Parameters
    ----------
    store
        The store, its schema at the current revision.
    settings
        ``[scoring]`` (kinds, half-life, PageRank, communities, lifecycle, weights) and
        ``[import] default_currency`` (the currency of customer value).
    now
        The time the scores are "as of" (default: now); decay, recency and ages count from it.
    progress
        Called as each stage starts with (description, stages done, stages in all).

    Returns
    -------
    ScoreRunReport
        Counts, modularity, customers per lifecycle stage, new churn warnings, seconds per stage.

    Raises
    ------
    StoreError
        The store failed during the run; the previous snapshot is still the current one, and the
        run is marked ``failed`` when the store can still be reached.
    """
    store.check_schema()
    now = (now or utcnow()).astimezone(UTC)
    scoring = settings.scoring
    parameters = {"scoring": scoring.model_dump(mode="json"), "currency": settings.imports.default_currency}
    run_id = snapshots.start_run(store, as_of=now, parameters=parameters)
    started = time.perf_counter()
    clock = StageTimer(progress)
    try:
        report = _run(store, settings, run_id, now, clock)
    except BaseException as exc:
        snapshots.fail_run(store, run_id, f"{type(exc).__name__}: {exc}", finished_at=utcnow())
        if isinstance(exc, sa.exc.SQLAlchemyError):
            detail = getattr(exc, "orig", None) or exc
            raise StoreError(
                f"score run {run_id} failed ({detail}); the previous snapshot is still the current one"
            ) from exc
        raise
    return ScoreRunReport(**{**report, "seconds": round(time.perf_counter() - started, 3)})


def load_inputs(
    store: Store, settings: Settings, *, now: datetime, clock: StageTimer | None = None
) -> ScoreInputs:
    """Read the graph, purchases, follows and the previous snapshot's stages and communities."""
    clock = clock or StageTimer(None)
    scoring = settings.scoring
    with clock.stage("loading the graph"), store.connect() as conn:
        graph = load_graph(
            conn, now=now, half_life_days=scoring.half_life_days, kind_weights=scoring.kinds.model_dump()
        )
        previous = snapshots.previous_snapshot(conn)
    with clock.stage("loading purchases and follows"), store.connect() as conn:
        index, times, amounts, other_currency = load_purchases(
            conn, graph.customer_ids, currency=settings.imports.default_currency, now=now
        )
        is_follower = load_followers(conn, graph.customer_ids, now=now)
    return ScoreInputs(graph, index, times, amounts, is_follower, previous, other_currency)


def score_arrays(
    inputs: ScoreInputs, settings: Settings, *, now: datetime, clock: StageTimer | None = None
) -> tuple[snapshots.SnapshotRows, dict[str, Any]]:
    """Every score of every node, from arrays only (no store): the snapshot's rows and its counts.

    Communities are labelled ``community ID`` here; :func:`rescore` names them after their leader.
    """
    clock = clock or StageTimer(None)
    scoring = settings.scoring
    graph, previous = inputs.graph, inputs.previous
    ids = graph.customer_ids
    with clock.stage("influence (PageRank)"):
        influence = pagerank(graph, alpha=scoring.pagerank_alpha)
    with clock.stage("reach"):
        direct, two_hop = reach(graph)
        referrals = referral_reach(graph)
    with clock.stage("communities"):
        raw, modularity = detect_communities(
            graph,
            seed=scoring.community_seed,
            resolution=scoring.community_resolution,
            method=scoring.community_method,
        )
        labels = stabilize_labels(raw, ids, previous.communities() if previous.run_id is not None else None)
        roles = community_roles(
            graph,
            labels,
            influence,
            leaders_per_community=scoring.leaders_per_community,
            resolution=scoring.community_resolution,
        )
        is_leader = np.zeros(len(ids), dtype=bool)
        for members in roles.leaders.values():
            is_leader[members] = True
        communities = _community_rows(graph, roles, scoring.community_resolution)
    with clock.stage("customer value"):
        offset = now.astimezone(settings.scrm.tz).utcoffset()
        summary = summarize_purchases(
            inputs.purchase_index,
            inputs.purchase_times,
            inputs.purchase_amounts,
            n_customers=len(ids),
            now=now.timestamp(),
            utc_offset_hours=offset.total_seconds() / 3600 if offset else 0.0,
        )
        value = customer_value(summary, horizon_days=scoring.clv_horizon_days)
    with clock.stage("lifecycle"):
        life = classify_lifecycle(
            value,
            is_follower=inputs.is_follower,
            previous_stage=previous.stages_for(ids) if previous.run_id is not None else None,
            days_since_previous=(now - previous.as_of).total_seconds() / 86_400 if previous.as_of else None,
            p_alive_threshold=scoring.p_alive_threshold,
            silent_gap_factor=scoring.silent_gap_factor,
            churn_days=scoring.churn_days,
        )
    with clock.stage("social value"):
        community_role = roles.bridge_score.astype(np.float64) + is_leader
        social = social_value(
            {
                "influence": influence,
                "reach": two_hop.astype(np.float64),
                "community": community_role,
                "lifetime_value": np.asarray(value.clv, dtype=np.float64),
            },
            scoring.weights.model_dump(),
        )
        stage = np.asarray(life.stage, dtype=object)
        rows = snapshots.SnapshotRows(
            customer_ids=ids,
            scores={
                "influence": influence,
                "reach_direct": np.asarray(direct, np.int64),
                "reach_two_hop": np.asarray(two_hop, np.int64),
                "referral_reach": np.asarray(referrals, np.int64),
                "community_id": labels,  # -1 (no ties, no community) is stored as NULL
                "is_leader": is_leader,
                "is_bridge": np.asarray(roles.bridges, bool),
                "bridge_score": np.asarray(roles.bridge_score, np.float64),
                "recency_days": np.asarray(summary.last_purchase_days_ago, np.float64),
                "frequency": np.asarray(summary.frequency, np.int64),
                "monetary_minor": np.rint(summary.total_spend).astype(np.int64),
                "rfm": np.asarray(value.rfm_code).astype(str),
                "p_alive": np.asarray(value.p_alive, np.float64),
                "expected_purchases": np.asarray(value.expected_purchases, np.float64),
                "clv_minor": np.rint(np.nan_to_num(np.asarray(value.clv, np.float64))).astype(np.int64),
                "n_influence": social.normalised["influence"],
                "n_reach": social.normalised["reach"],
                "n_community": social.normalised["community"],
                "n_value": social.normalised["lifetime_value"],
                "social_value": social.score,
                "stage": stage.astype(str),
            },
            communities=communities,
            stage=stage,
            reasons=life.reasons,
            churn_warning=np.asarray(life.churn_warning, bool),
        )
    names, counts = np.unique(stage.astype(str), return_counts=True)
    return rows, {
        "customers": len(ids),
        "edges": graph.n_edges,
        "purchases": len(inputs.purchase_index),
        "followers": int(np.count_nonzero(inputs.is_follower)),
        "communities": len(communities),
        "modularity": float(modularity),
        "value_method": value.method,
        "stages": dict(zip(names.tolist(), counts.tolist(), strict=True)),
    }


def _run(store: Store, settings: Settings, run_id: int, now: datetime, clock: StageTimer) -> dict[str, Any]:
    inputs = load_inputs(store, settings, now=now, clock=clock)
    rows, counts = score_arrays(inputs, settings, now=now, clock=clock)
    with clock.stage("writing the snapshot"):
        rows = _named(store, rows)
        summary = {
            **counts,
            "other_currency_purchases": inputs.other_currency_purchases,
            "timings": clock.timings,
        }
        written = snapshots.write_snapshot(
            store, run_id, rows, as_of=now, previous=inputs.previous, summary=summary,
            summarise=lambda conn: {
                SUMMARY_KEY: compute_funnel(conn, run_id), CHURN_KEY: churn_head(conn, run_id),
            },
        )  # fmt: skip
        snapshots.prune_snapshots(store, settings.scoring.keep_snapshots)
        # PostgreSQL's planner must know the snapshot tables grew (segments join them); no-op on SQLite
        store.analyze("customer_score", "stage_change", "churn_warning", "community")
    return {
        "run_id": run_id,
        "as_of": now,
        **counts,
        "stage_changes": written.stage_changes,
        "new_churn_warnings": written.new_churn_warnings,
        "resolved_churn_warnings": written.resolved_churn_warnings,
        "timings": clock.timings,
    }


def _named(store: Store, rows: snapshots.SnapshotRows) -> snapshots.SnapshotRows:
    """The communities labelled after their first leader ("Li's circle")."""
    with store.connect() as conn:
        names = _names(conn, [c.leaders[0] for c in rows.communities if c.leaders])
    communities = [
        replace(c, label=f"{names.get(c.leaders[0]) or f'customer {c.leaders[0]}'}'s circle")
        if c.leaders
        else c
        for c in rows.communities
    ]
    return replace(rows, communities=communities)


def _community_rows(
    graph: SocialGraph, roles: Communities, resolution: float
) -> list[snapshots.CommunityRow]:
    """One row per community: size, bridges, modularity share and leaders (customer ids)."""
    labels = roles.labels
    shares = _modularity_shares(graph, labels, resolution)
    ids, sizes = np.unique(labels[labels >= 0], return_counts=True)
    bridge_ids, bridge_counts = np.unique(labels[(labels >= 0) & roles.bridges], return_counts=True)
    bridges = dict(zip(bridge_ids.tolist(), bridge_counts.tolist(), strict=True))
    return [
        snapshots.CommunityRow(
            community_id=community,
            size=size,
            bridges=bridges.get(community, 0),
            modularity_share=shares.get(community, 0.0),
            leaders=graph.customer_ids[roles.leaders.get(community, [])].tolist(),
            label=f"community {community}",
        )
        for community, size in zip(ids.tolist(), sizes.tolist(), strict=True)
    ]
