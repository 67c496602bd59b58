"""Social value: one explained 0-100 score from influence, reach, community role and lifetime value.

Each component is first put on a common 0..1 scale by its percentile rank among all customers, then weighted
(``[scoring.weights]`` in ``config.toml``, normalised to sum 1) and scaled to points. Percentile ranks are
robust to heavy tails: PageRank, reach and lifetime value are all dominated by a few huge values, and min-max
scaling would crush everyone else to zero, while a log scale still depends on the units. A score is therefore
read as "how many customers this one beats on each component, weighted", and each component's points say why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from scrm.errors import ConfigError

__all__ = ["SocialValue", "explain", "percentile_rank", "social_value"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SocialValue:
    """The combined score and its parts (arrays per customer).

    Attributes
    ----------
    score : ndarray
        0..100: the sum of the contributions.
    contributions : dict of str to ndarray
        Points from each component: ``weight * normalised * 100`` (weights normalised to sum 1).
    normalised : dict of str to ndarray
        Each component on the 0..1 scale of :func:`percentile_rank`.
    weights : dict of str to float
        The normalised weights used (summing to 1, or all 0).
    """

    score: FloatArray
    contributions: dict[str, FloatArray]
    normalised: dict[str, FloatArray]
    weights: dict[str, float]


def percentile_rank(values: npt.ArrayLike) -> FloatArray:
    """Percentile ranks on 0..1: the smallest value gets 0, the largest 1, ties share their average rank.

    ``(rank - rank_min) / (rank_max - rank_min)`` with ``rankdata(method="average")``: so all customers tied
    at the bottom (for example everyone with no reach at all) get 0 and earn no points, and a constant
    component (no information) gives 0 to everyone. ``nan`` counts as the smallest value.

    Examples
    --------
    >>> percentile_rank([0, 0, 0, 5, 7, 7, 100]).round(3).tolist()
    [0.0, 0.0, 0.0, 0.4, 0.7, 0.7, 1.0]
    >>> percentile_rank([3, 3]).tolist()
    [0.0, 0.0]
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        return np.zeros(0)
    v = np.where(np.isnan(v), -np.inf, v)
    ranks = np.asarray(rankdata(v, method="average"), dtype=np.float64)
    low, high = ranks[np.argmin(v)], ranks[np.argmax(v)]
    if high == low:
        return np.zeros(v.size)
    return np.asarray((ranks - low) / (high - low), dtype=np.float64)


def social_value(components: Mapping[str, npt.ArrayLike], weights: Mapping[str, float]) -> SocialValue:
    """Combine score components into one 0..100 social value.

    Parameters
    ----------
    components : mapping of str to array_like
        One array per component, all of the same length (one value per customer), e.g. ``{"influence":
        pagerank, "reach": two_hop, "community": role score, "lifetime_value": clv}``. Larger is better.
    weights : mapping of str to float
        A non-negative weight per component (``[scoring.weights]``), normalised to sum 1. A component without
        a weight weighs 0; if all weights are 0, every score is 0.

    Returns
    -------
    SocialValue

    Raises
    ------
    scrm.errors.ConfigError
        A weight is negative or not a number, or names a component that was not given.

    Examples
    --------
    Six customers. Customer 0 spent ¥2,000 (200,000 fen of expected value) and many people follow and share
    what they post; customer 1 spent ¥5,000 but nobody listens to them:

    >>> components = {
    ...     "influence": [0.40, 0.02, 0.10, 0.15, 0.08, 0.25],    # PageRank
    ...     "reach": [850, 0, 40, 120, 15, 300],                  # two-hop audience
    ...     "community": [1.0, 0.0, 0.0, 0.3, 0.0, 0.6],          # leader / bridge role
    ...     "lifetime_value": [200_000, 500_000, 30_000, 80_000, 0, 120_000],
    ... }
    >>> weights = {"influence": 0.35, "reach": 0.15, "community": 0.10, "lifetime_value": 0.40}
    >>> sv = social_value(components, weights)
    >>> sv.score.round(1).tolist()
    [92.0, 40.0, 28.0, 51.0, 10.0, 71.5]
    >>> bool(sv.score[0] > sv.score[1])
    True
    >>> explain(sv, 0)
    [('influence', 1.0, 35.0), ('lifetime_value', 0.8, 32.0), ('reach', 1.0, 15.0), ('community', 1.0, 10.0)]
    >>> explain(sv, 1)
    [('lifetime_value', 1.0, 40.0), ('influence', 0.0, 0.0), ('reach', 0.0, 0.0), ('community', 0.0, 0.0)]
    """
    for name, w in weights.items():
        if name not in components:
            raise ConfigError(
                f"[scoring.weights] names {name!r}, which is not a score component "
                f"(components: {', '.join(sorted(components)) or 'none'})"
            )
        if not np.isfinite(w) or w < 0:
            raise ConfigError(f"[scoring.weights] {name} = {w}: weights must be non-negative numbers")
    arrays = {name: np.asarray(values, dtype=np.float64).reshape(-1) for name, values in components.items()}
    sizes = {a.size for a in arrays.values()}
    if len(sizes) > 1:
        raise ValueError(f"components have different lengths: { {k: a.size for k, a in arrays.items()} }")
    n = sizes.pop() if sizes else 0
    total = float(sum(weights.get(name, 0.0) for name in arrays))
    norm_weights = {name: (float(weights.get(name, 0.0)) / total if total > 0 else 0.0) for name in arrays}
    normalised = {name: percentile_rank(a) for name, a in arrays.items()}
    contributions = {name: norm_weights[name] * normalised[name] * 100.0 for name in arrays}
    score = np.zeros(n)
    for points in contributions.values():
        score += points
    return SocialValue(score=score, contributions=contributions, normalised=normalised, weights=norm_weights)


def explain(
    value: SocialValue, index: int, *, labels: Mapping[str, str] | None = None
) -> list[tuple[str, float, float]]:
    """Why one customer has their score: per component ``(name, normalised value, points)``, largest first.

    Parameters
    ----------
    value : SocialValue
    index : int
        The customer (node index).
    labels : mapping of str to str, optional
        Display names for the components (e.g. ``{"lifetime_value": "lifetime value"}``).

    Returns
    -------
    list of tuple
        Points sum to the customer's score. Ties keep the order of the components.
    """
    rows = [
        (
            (labels or {}).get(name, name),
            round(float(value.normalised[name][index]), 6),
            round(float(points[index]), 6),
        )
        for name, points in value.contributions.items()
    ]
    return sorted(rows, key=lambda row: -row[2])
