"""Lifecycle stages (prospect, new, active, loyal, at risk, churned, won back), churn warnings, the funnel.

:func:`classify_lifecycle` puts every customer in one stage from their purchase history and the value models
of :mod:`graph.value`, with the reasons in words, and raises a churn warning for each customer at risk.
:func:`funnel` turns the recorded stage changes into counts, conversion rates and times in stage.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import SupportsIndex, overload

import numpy as np
import numpy.typing as npt

from graph.value import CustomerValue

__all__ = ["FUNNEL_STEPS", "STAGES", "Funnel", "LifecycleResult", "Reasons", "classify_lifecycle", "funnel"]

STAGES = ("prospect", "new", "active", "loyal", "at_risk", "churned", "won_back")

#: The moves between stages whose conversion :func:`funnel` reports.
FUNNEL_STEPS = (
    ("prospect", "new"),
    ("new", "active"),
    ("active", "loyal"),
    ("new", "at_risk"),
    ("active", "at_risk"),
    ("loyal", "at_risk"),
    ("at_risk", "churned"),
    ("at_risk", "won_back"),
    ("churned", "won_back"),
)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _days(value: float, *, adjective: bool = False) -> str:
    if adjective:
        return f"{value:.0f}-day"
    return f"{value:.0f} day" + ("" if round(value) == 1 else "s")


@dataclass(frozen=True)
class _Facts:
    """What the reasons are made from (arrays per customer)."""

    stage: npt.NDArray[np.object_]
    is_follower: BoolArray
    purchases: FloatArray
    silence: FloatArray
    gap: FloatArray
    own_gap: BoolArray
    p_alive: FloatArray
    clv_share: FloatArray
    risk_p: BoolArray
    risk_gap: BoolArray
    churn_days: BoolArray
    churn_p: BoolArray
    previous: npt.NDArray[np.object_]
    p_alive_threshold: float
    silent_gap_factor: float
    churn_after_days: float
    churned_p_alive: float


class Reasons(Sequence[list[str]]):
    """Why each customer is in their stage: ``reasons[i]`` is a list of short sentences.

    The sentences are written when asked for, so that a million customers cost nothing until a few are shown.
    """

    def __init__(self, facts: _Facts) -> None:
        self._f = facts

    def __len__(self) -> int:
        return int(self._f.stage.shape[0])

    @overload
    def __getitem__(self, index: SupportsIndex) -> list[str]: ...

    @overload
    def __getitem__(self, index: slice) -> list[list[str]]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> list[str] | list[list[str]]:
        if isinstance(index, slice):
            return [self._reasons(i) for i in range(*index.indices(len(self)))]
        i = range(len(self))[index]
        return self._reasons(i)

    def __iter__(self) -> Iterator[list[str]]:
        return (self._reasons(i) for i in range(len(self)))

    def _reasons(self, i: int) -> list[str]:
        f = self._f
        stage = str(f.stage[i])
        if stage == "prospect":
            return ["follows, never bought" if f.is_follower[i] else "never bought, does not follow"]
        out: list[str] = []
        silence, gap, p = float(f.silence[i]), float(f.gap[i]), float(f.p_alive[i])
        whose = "their" if f.own_gap[i] else "the store's"
        if stage == "churned":
            if f.churn_days[i]:
                out.append(f"no purchase for {_days(silence)} (churned after {_days(f.churn_after_days)})")
            if f.churn_p[i]:
                out.append(f"P(active) {p:.2f} < {f.churned_p_alive:g}")
        elif stage == "at_risk":
            if f.risk_p[i]:
                out.append(f"P(active) {p:.2f} < {f.p_alive_threshold:g}")
            if f.risk_gap[i]:
                out.append(
                    f"no purchase for {_days(silence)}, {silence / gap:.1f}x {whose} usual "
                    f"{_days(gap, adjective=True)} gap"
                )
        elif stage == "won_back":
            out.append(
                f"bought again {_days(silence)} ago after being {str(f.previous[i]).replace('_', ' ')}"
            )
        elif stage == "new":
            out.append(f"first purchase {_days(silence)} ago")
        elif stage == "loyal":
            out.append(
                f"{f.purchases[i]:.0f} purchases, lifetime value above {f.clv_share[i]:.0%} of buyers, "
                f"last {_days(silence)} ago"
            )
        else:
            out.append(f"{f.purchases[i]:.0f} purchases, last {_days(silence)} ago")
        return out


@dataclass(frozen=True)
class LifecycleResult:
    """Stage per customer, with reasons and churn warnings.

    Attributes
    ----------
    stage : ndarray of object (str)
        One of :data:`STAGES` per customer.
    reasons : Reasons
        A sequence of lists of sentences, one list per customer (see :class:`Reasons`).
    churn_warning : ndarray of bool
        True for customers at risk.
    """

    stage: npt.NDArray[np.object_]
    reasons: Reasons
    churn_warning: BoolArray


def _share_below(values: FloatArray, mask: BoolArray) -> FloatArray:
    """For masked entries the share of the other masked entries that are strictly smaller (0..1)."""
    out = np.zeros(values.shape[0])
    v = values[mask]
    if v.size > 1:
        out[mask] = np.searchsorted(np.sort(v), v, side="left") / (v.size - 1)
    return out


def classify_lifecycle(
    value: CustomerValue,
    *,
    is_follower: npt.ArrayLike,
    previous_stage: npt.ArrayLike | None,
    p_alive_threshold: float = 0.5,
    silent_gap_factor: float = 3.0,
    churn_days: float = 365,
    loyal_min_purchases: int = 3,
    loyal_min_percentile: float = 0.8,
    churned_p_alive: float = 0.05,
    days_since_previous: float | None = None,
) -> LifecycleResult:
    """Put every customer in a lifecycle stage, with reasons, and flag those at risk.

    The rules, applied in this order (the first that matches wins); "silence" is the time since the last
    purchase, the "usual gap" the customer's own mean time between purchase days, or for one-time buyers the
    median of the repeat buyers' gaps (the store's usual gap; none when there are no repeat buyers):

    1. **prospect**: never bought (whether or not they follow; the reason says which).
    2. **churned**: silent for more than ``churn_days``, or ``P(active) < churned_p_alive``.
    3. **at_risk**: ``P(active) < p_alive_threshold``, or silent for more than ``silent_gap_factor`` times the
       usual gap. Every at-risk customer gets a churn warning.
    4. **won_back**: the previous stage was at_risk or churned and the customer is no longer either; when
       ``days_since_previous`` (days since the previous classification) is given, a purchase within it is also
       required, and a customer won back stays won_back until they buy again.
    5. **new**: exactly one purchase day.
    6. **loyal**: at least ``loyal_min_purchases`` purchase days and a lifetime value above at least
       ``loyal_min_percentile`` of the other buyers.
    7. **active**: every other buyer.

    Parameters
    ----------
    value : CustomerValue
        From :func:`graph.value.customer_value`.
    is_follower : array_like of bool
        Whether each customer follows one of our accounts.
    previous_stage : array_like of str, optional
        The stages of the previous run (None or "" for customers who had none); None on the first run.
    p_alive_threshold, silent_gap_factor, churn_days : float
        The thresholds above (``[scoring]`` in ``config.toml``).
    loyal_min_purchases, loyal_min_percentile, churned_p_alive : int, float, float
        The other thresholds above.
    days_since_previous : float, optional
        Days since the previous run (see rule 4).

    Returns
    -------
    LifecycleResult

    Examples
    --------
    >>> from graph.value import customer_value, summarize_purchases
    >>> day = 86_400.0
    >>> purchases = {1: [100], 2: [10, 40, 70, 95], 3: [0, 10, 20, 30]}    # customer: purchase days
    >>> who = [c for c, days in purchases.items() for _ in days]
    >>> when = [d * day for days in purchases.values() for d in days]
    >>> s = summarize_purchases(who, when, [5000] * len(who), n_customers=4, now=105 * day)
    >>> life = classify_lifecycle(customer_value(s), is_follower=[True, False, True, False],
    ...                           previous_stage=None)
    >>> life.stage.tolist()
    ['prospect', 'new', 'loyal', 'at_risk']
    >>> life.reasons[3]
    ['P(active) 0.35 < 0.5', 'no purchase for 75 days, 7.5x their usual 10-day gap']
    >>> life.churn_warning.tolist()
    [False, False, False, True]

    References
    ----------
    .. [1] P. S. Fader, B. G. S. Hardie and K. L. Lee, "'Counting your customers' the easy way: an alternative
       to the Pareto/NBD model", Marketing Science 24(2), 275-284, 2005 (P(active)).
    """
    summary = value.summary
    n = summary.n_customers
    follower = np.asarray(is_follower, dtype=bool).reshape(-1)
    if follower.shape[0] != n:
        raise ValueError(f"is_follower has {follower.shape[0]} entries for {n} customers")
    previous = np.full(n, "", dtype=object)
    if previous_stage is not None:
        given = np.asarray(previous_stage, dtype=object).reshape(-1)
        if given.shape[0] != n:
            raise ValueError(f"previous_stage has {given.shape[0]} entries for {n} customers")
        previous = given.astype(str).astype(object)
        previous[previous == "None"] = ""

    buyer = summary.is_buyer
    silence = np.where(buyer, summary.last_purchase_days_ago, 0.0)
    purchases = summary.purchases
    own_gap = ~np.isnan(summary.mean_gap_days)
    store_gap = float(np.median(summary.mean_gap_days[own_gap])) if own_gap.any() else np.nan
    gap = np.where(own_gap, summary.mean_gap_days, store_gap)
    p_alive = np.where(buyer, value.p_alive, np.nan)
    with np.errstate(invalid="ignore"):
        churn_by_days = buyer & (silence > churn_days)
        churn_by_p = buyer & (p_alive < churned_p_alive)
        risk_by_p = buyer & (p_alive < p_alive_threshold)
        risk_by_gap = buyer & (gap > 0) & (silence > silent_gap_factor * gap)
    clv_share = _share_below(np.asarray(value.clv, dtype=np.float64), buyer)

    churned = churn_by_days | churn_by_p
    at_risk = ~churned & (risk_by_p | risk_by_gap)
    healthy = buyer & ~churned & ~at_risk
    was_lost = np.isin(previous, ("at_risk", "churned"))
    if days_since_previous is None:
        won_back = healthy & was_lost
    else:
        bought_since = silence <= days_since_previous
        won_back = healthy & ((was_lost & bought_since) | ((previous == "won_back") & ~bought_since))
    new = healthy & ~won_back & (purchases == 1)
    loyal = healthy & ~won_back & (purchases >= loyal_min_purchases) & (clv_share >= loyal_min_percentile)

    stage = np.full(n, "active", dtype=object)
    stage[~buyer] = "prospect"
    stage[loyal] = "loyal"
    stage[new] = "new"
    stage[won_back] = "won_back"
    stage[at_risk] = "at_risk"
    stage[churned] = "churned"
    facts = _Facts(
        stage=stage,
        is_follower=follower,
        purchases=purchases,
        silence=silence,
        gap=gap,
        own_gap=own_gap,
        p_alive=p_alive,
        clv_share=clv_share,
        risk_p=risk_by_p,
        risk_gap=risk_by_gap,
        churn_days=churn_by_days,
        churn_p=churn_by_p,
        previous=previous,
        p_alive_threshold=p_alive_threshold,
        silent_gap_factor=silent_gap_factor,
        churn_after_days=churn_days,
        churned_p_alive=churned_p_alive,
    )
    return LifecycleResult(stage=stage, reasons=Reasons(facts), churn_warning=at_risk.copy())


@dataclass(frozen=True)
class Funnel:
    """Counts per stage, conversion between stages, and time in stage.

    Attributes
    ----------
    current : dict
        Customers now in each stage (their latest change), for every stage in :data:`STAGES`.
    entered : dict
        Customers who ever entered each stage.
    conversion : dict
        For each step ``(a, b)`` of :data:`FUNNEL_STEPS`: the share of the customers who entered ``a`` that
        entered ``b`` later (``nan`` when nobody entered ``a``).
    median_days_in_stage : dict
        Median length of the completed stays in each stage, in days (``nan`` without any).
    """

    current: dict[str, int]
    entered: dict[str, int]
    conversion: dict[tuple[str, str], float]
    median_days_in_stage: dict[str, float]


def funnel(
    customer: npt.ArrayLike, from_stage: npt.ArrayLike, to_stage: npt.ArrayLike, at: npt.ArrayLike
) -> Funnel:
    """Summarise recorded stage changes (one row per change: customer, from, to, when).

    Parameters
    ----------
    customer : array_like of int
    from_stage, to_stage : array_like of str
        ``from_stage`` may be None or "" for a customer's first stage; only ``to_stage`` and the order of the
        changes are used.
    at : array_like
        When each change happened: unix seconds or datetime64.

    Returns
    -------
    Funnel

    Examples
    --------
    >>> day = 86_400.0
    >>> f = funnel([1, 1, 1, 2, 2], [None, "prospect", "new", None, "new"],
    ...            ["prospect", "new", "active", "new", "at_risk"], [0, 10 * day, 40 * day, 0, 60 * day])
    >>> f.current["active"], f.current["at_risk"], f.entered["new"]
    (1, 1, 2)
    >>> f.conversion[("new", "active")], f.conversion[("new", "at_risk")]
    (0.5, 0.5)
    >>> f.median_days_in_stage["new"]
    45.0
    """
    cust = np.asarray(customer, dtype=np.int64).reshape(-1)
    to = np.asarray(to_stage, dtype=object).reshape(-1)
    when = np.asarray(at)
    if np.issubdtype(when.dtype, np.datetime64):
        seconds = when.astype("datetime64[us]").astype(np.int64) / 1e6
    else:
        seconds = when.astype(np.float64)
    seconds = np.asarray(seconds, dtype=np.float64).reshape(-1)
    _ = from_stage  # the previous stage is implied by the order of the changes
    order = np.lexsort((seconds, cust))
    cust, to, seconds = cust[order], to[order], seconds[order]
    last = np.ones(cust.size, dtype=bool)
    if cust.size:
        last[:-1] = cust[1:] != cust[:-1]
    current = {s: int(np.count_nonzero(to[last] == s)) for s in STAGES}
    entered = {s: int(np.unique(cust[to == s]).size) for s in STAGES}
    first_entry: dict[str, dict[int, float]] = {s: {} for s in STAGES}
    for c, s, t in zip(cust.tolist(), to.tolist(), seconds.tolist(), strict=True):
        if s in first_entry:
            first_entry[s].setdefault(c, t)
    conversion: dict[tuple[str, str], float] = {}
    for a, b in FUNNEL_STEPS:
        starts = first_entry[a]
        is_b = to == b
        later = {
            c
            for c, t in zip(cust[is_b].tolist(), seconds[is_b].tolist(), strict=True)
            if c in starts and t > starts[c]
        }
        conversion[(a, b)] = len(later) / len(starts) if starts else float("nan")
    stays = ~last
    length = np.zeros(cust.size)
    if cust.size:
        length[:-1] = (seconds[1:] - seconds[:-1]) / 86_400.0
    median = {
        s: float(np.median(length[stays & (to == s)])) if np.any(stays & (to == s)) else float("nan")
        for s in STAGES
    }
    return Funnel(current=current, entered=entered, conversion=conversion, median_days_in_stage=median)
