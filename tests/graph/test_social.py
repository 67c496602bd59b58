"""The combined social value and its explanation (graph.social)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import percentileofscore

from graph.social import explain, percentile_rank, social_value
from scrm.config import ScoringWeights
from scrm.errors import ConfigError

WEIGHTS = ScoringWeights().model_dump()  # the defaults of config.toml's [scoring.weights]


def _components(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "influence": rng.pareto(1.5, n),  # heavy tails, like PageRank
        "reach": rng.integers(0, 50, n).astype(float) ** 2,  # many ties
        "community": (rng.random(n) < 0.1).astype(float),  # mostly zero
        "lifetime_value": np.where(rng.random(n) < 0.5, 0.0, rng.lognormal(10, 1.5, n)),
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_contributions_sum_to_the_score_and_respect_the_weights(seed: int) -> None:
    comps = _components(2_000, seed)
    sv = social_value(comps, WEIGHTS)
    total = sum(WEIGHTS.values())
    np.testing.assert_allclose(sum(sv.contributions.values()), sv.score, rtol=1e-12)
    assert sv.score.min() >= 0 and sv.score.max() <= 100
    for name, points in sv.contributions.items():
        share = WEIGHTS[name] / total
        assert sv.weights[name] == pytest.approx(share)
        assert points.max() == pytest.approx(
            100 * share
        )  # the best customer on a component gets its full weight
        assert points.min() == 0
        np.testing.assert_allclose(points, 100 * share * sv.normalised[name])
    # Doubling every weight changes nothing (normalised); one weight alone makes the score that component.
    doubled = social_value(comps, {k: 2 * w for k, w in WEIGHTS.items()})
    np.testing.assert_allclose(doubled.score, sv.score)
    only = social_value(comps, {"influence": 1.0})
    np.testing.assert_allclose(only.score, 100 * only.normalised["influence"])
    assert only.weights["reach"] == 0 and not only.contributions["reach"].any()


def test_percentile_rank_against_scipy() -> None:
    values = _components(500, 3)["reach"]
    ours = percentile_rank(values)
    # scipy's "mean" percentile counts ties half; ours is that, rescaled so that min -> 0 and max -> 1.
    theirs = np.array([percentileofscore(values, v, kind="mean") for v in values])
    lo, hi = theirs[np.argmin(values)], theirs[np.argmax(values)]
    np.testing.assert_allclose(ours, (theirs - lo) / (hi - lo), atol=1e-12)
    # Order kept, ties equal, robust to a monster value.
    order = np.argsort(values)
    assert np.all(np.diff(ours[order]) >= 0)
    # Any increasing transform (a log scale, a monster at the top) gives the same ranks.
    np.testing.assert_allclose(percentile_rank(np.log1p(values)), ours, atol=1e-15)
    np.testing.assert_allclose(percentile_rank(values**4 + 1e9 * (values == values.max())), ours, atol=1e-15)


def test_a_small_buyer_with_a_following_outranks_a_big_buyer_nobody_listens_to() -> None:
    # 1,000 ordinary customers plus: 0 = ¥2,000 buyer, well connected; 1 = ¥5,000 buyer, isolated.
    comps = _components(1_002, 7)
    comps["lifetime_value"][:2] = [200_000, 500_000]  # fen
    comps["influence"][:2] = [np.quantile(comps["influence"], 0.99), 0.0]
    comps["reach"][:2] = [comps["reach"].max(), 0]
    comps["community"][:2] = [1.0, 0.0]
    sv = social_value(comps, WEIGHTS)
    assert sv.normalised["lifetime_value"][1] > sv.normalised["lifetime_value"][0]
    assert sv.score[0] > sv.score[1]
    # ... and the explanation says why: influence and reach on one side, lifetime value on the other.
    big = explain(sv, 1, labels={"lifetime_value": "lifetime value"})
    assert big[0][0] == "lifetime value" and big[0][2] == pytest.approx(sv.score[1])
    assert [name for name, _, points in big if points > 0] == ["lifetime value"]
    small = explain(sv, 0)
    assert {name for name, _, points in small if points > 0} == set(WEIGHTS)
    assert sum(points for _, _, points in small) == pytest.approx(sv.score[0])
    assert [p for _, _, p in small] == sorted((p for _, _, p in small), reverse=True)


def test_zero_weights_empty_input_and_bad_weights() -> None:
    comps = _components(50, 1)
    zero = social_value(comps, dict.fromkeys(WEIGHTS, 0.0))
    assert not zero.score.any() and all(w == 0 for w in zero.weights.values())
    empty = social_value({k: np.zeros(0) for k in WEIGHTS}, WEIGHTS)
    assert empty.score.shape == (0,)
    nothing = social_value({}, {})
    assert nothing.score.shape == (0,)
    constant = social_value({"influence": np.ones(5)}, {"influence": 1.0})
    assert not constant.score.any()  # a component that does not vary says nothing
    with pytest.raises(ConfigError, match="popularity"):
        social_value(comps, {**WEIGHTS, "popularity": 0.2})
    with pytest.raises(ConfigError, match="non-negative"):
        social_value(comps, {**WEIGHTS, "reach": -1.0})
    with pytest.raises(ValueError, match="lengths"):
        social_value({"influence": np.ones(3), "reach": np.ones(4)}, {})


def test_nan_counts_as_lowest() -> None:
    sv = social_value({"lifetime_value": np.array([np.nan, 0.0, 5.0, 10.0])}, {"lifetime_value": 1.0})
    assert sv.score.tolist() == [0.0, pytest.approx(100 / 3), pytest.approx(200 / 3), 100.0]
