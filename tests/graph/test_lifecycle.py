"""Lifecycle stages, churn warnings and the funnel (graph.lifecycle)."""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt
import pytest

from graph.lifecycle import STAGES, classify_lifecycle, funnel
from graph.value import CustomerValue, customer_value, summarize_purchases

DAY = 86_400.0


def _value(
    history: dict[int, list[float]], n: int, now_day: float, *, background: int = 0, seed: int = 0
) -> CustomerValue:
    """Customers ``0..n-1`` with the given purchase days, and after them ``background`` ordinary repeat
    buyers (a shop large enough for the fitted models)."""
    who: list[int] = []
    when: list[float] = []
    for customer, days in history.items():
        who += [customer] * len(days)
        when += list(days)
    rng = np.random.default_rng(seed)
    for k in range(background):
        first = rng.uniform(0, now_day / 2)
        gaps = rng.exponential(rng.uniform(10, 60), int(rng.integers(1, 8)))
        bought = first + np.concatenate([[0.0], np.cumsum(gaps)])
        bought = bought[bought < now_day - rng.uniform(0, 30)]
        who += [n + k] * bought.size
        when += bought.tolist()
    amounts = np.random.default_rng(seed + 1).uniform(1000, 20000, len(who))
    s = summarize_purchases(
        who, np.asarray(when) * DAY, amounts, n_customers=n + background, now=now_day * DAY
    )
    return customer_value(s)


# The cases, one per stage (now = day 400):
CASES = {
    0: [],  # prospect (follows)
    1: [],  # prospect (does not follow)
    2: [395.0],  # new: one recent purchase
    3: [300.0, 330.0, 360.0, 390.0],  # active or loyal: regular buyer
    4: [300.0, 310.0, 320.0, 330.0, 340.0, 350.0],  # at risk: bought every 10 days, silent 50 days
    5: [10.0],  # churned: one purchase 390 days ago
}
N = len(CASES)
FOLLOWS = np.array([True, False, True, False, True, False])


@pytest.fixture(scope="module")
def shop() -> CustomerValue:
    return _value(CASES, N, 400.0, background=300)


def test_each_stage_from_a_constructed_case(shop: CustomerValue) -> None:
    follows = np.concatenate([FOLLOWS, np.zeros(300, dtype=bool)])
    life = classify_lifecycle(shop, is_follower=follows, previous_stage=None)
    assert shop.method == "bgnbd+gamma_gamma"
    assert life.stage[:N].tolist()[:3] == ["prospect", "prospect", "new"]
    assert life.stage[3] in ("active", "loyal")
    assert life.stage[4] == "at_risk"
    assert life.stage[5] == "churned"
    assert life.reasons[0] == ["follows, never bought"] and life.reasons[1] == [
        "never bought, does not follow"
    ]
    assert life.reasons[2] == ["first purchase 5 days ago"]
    assert life.reasons[5] == ["no purchase for 390 days (churned after 365 days)"]
    # The background holds every healthy stage.
    assert {"new", "active", "loyal"} <= set(life.stage.tolist())
    assert set(life.stage.tolist()) <= set(STAGES)
    # Warnings exactly for the customers at risk, each with a reason.
    np.testing.assert_array_equal(life.churn_warning, life.stage == "at_risk")
    assert len(life.reasons) == N + 300
    assert all(life.reasons[i] for i in np.flatnonzero(life.churn_warning))


def test_churn_warning_reasons_are_readable(shop: CustomerValue) -> None:
    life = classify_lifecycle(shop, is_follower=np.zeros(N + 300, dtype=bool), previous_stage=None)
    reasons = life.reasons[4]
    p = float(shop.p_alive[4])
    assert 0.05 < p < 0.5
    assert reasons == [f"P(active) {p:.2f} < 0.5", "no purchase for 50 days, 5.0x their usual 10-day gap"]
    pattern = re.compile(
        r"^(P\(active\) 0\.\d\d < 0\.5"
        r"|no purchase for \d+ days, \d+\.\dx (their|the store's) usual \d+-day gap)$"
    )
    for i in np.flatnonzero(life.churn_warning):
        assert life.reasons[i] and all(pattern.match(r) for r in life.reasons[i]), life.reasons[i]


def test_loyal_needs_purchases_and_value() -> None:
    # Customer 0: 6 purchases of large amounts; customer 1: 6 purchases of small ones.
    history = {0: [300.0, 320.0, 340.0, 360.0, 380.0, 395.0], 1: [300.0, 320.0, 340.0, 360.0, 380.0, 395.0]}
    who = [0] * 6 + [1] * 6
    when = np.asarray(history[0] + history[1]) * DAY
    amounts = [90_000.0] * 6 + [100.0] * 6
    s = summarize_purchases(who, when, amounts, n_customers=2, now=400 * DAY)
    life = classify_lifecycle(customer_value(s), is_follower=[False, False], previous_stage=None)
    assert life.stage.tolist() == ["loyal", "active"]
    assert life.reasons[0][0].startswith("6 purchases, lifetime value above 100% of buyers")
    stricter = classify_lifecycle(
        customer_value(s), is_follower=[False, False], previous_stage=None, loyal_min_purchases=7
    )
    assert stricter.stage.tolist() == ["active", "active"]


def test_one_time_buyer_is_measured_against_the_stores_usual_gap() -> None:
    # BG/NBD gives one-time buyers P(active) = 1, so the store's usual gap is what flags them.
    v = _value({0: [280.0], 1: [390.0]}, 2, 400.0, background=300)
    store_gap = float(np.nanmedian(v.summary.mean_gap_days))
    assert 120 > 3 * store_gap > 10 and v.p_alive[0] == 1.0
    life = classify_lifecycle(v, is_follower=np.zeros(302, dtype=bool), previous_stage=None)
    assert life.stage[0] == "at_risk" and life.stage[1] == "new"
    assert life.reasons[0] == [
        f"no purchase for 120 days, {120 / store_gap:.1f}x the store's usual {store_gap:.0f}-day gap"
    ]


def test_won_back_after_at_risk_then_back_to_normal() -> None:
    regular = {k: [10.0 * j for j in range(1, 20)] for k in range(1, 4)}  # every 10 days up to day 190
    history = {0: [10.0, 20.0, 30.0, 40.0], **regular}
    first = _value(history, 4, 200.0)
    life1 = classify_lifecycle(first, is_follower=np.zeros(4, dtype=bool), previous_stage=None)
    assert life1.stage[0] == "at_risk"
    # Day 210: customer 0 bought again on day 205 -> won back.
    history2 = {0: [*history[0], 205.0], **{k: [*v, 200.0] for k, v in regular.items()}}
    second = _value(history2, 4, 210.0)
    life2 = classify_lifecycle(
        second, is_follower=np.zeros(4, dtype=bool), previous_stage=life1.stage, days_since_previous=10
    )
    assert life2.stage[0] == "won_back" and not life2.churn_warning[0]
    assert life2.reasons[0] == ["bought again 5 days ago after being at risk"]
    # Day 215, no new purchase: still won back; day 225 after another purchase: an ordinary stage again.
    third = _value(history2, 4, 215.0)
    life3 = classify_lifecycle(
        third, is_follower=np.zeros(4, dtype=bool), previous_stage=life2.stage, days_since_previous=5
    )
    assert life3.stage[0] == "won_back"
    history4 = {0: [*history2[0], 220.0], **{k: [*v, 220.0] for k, v in regular.items()}}
    fourth = _value(history4, 4, 225.0)
    life4 = classify_lifecycle(
        fourth, is_follower=np.zeros(4, dtype=bool), previous_stage=life3.stage, days_since_previous=10
    )
    assert life4.stage[0] in ("active", "loyal")
    # Without days_since_previous, leaving at_risk counts as won back; previous stage None means no history.
    assert (
        classify_lifecycle(second, is_follower=[False] * 4, previous_stage=life1.stage).stage[0] == "won_back"
    )
    previous = np.array([None, "active", "", "loyal"], dtype=object)
    assert classify_lifecycle(second, is_follower=[False] * 4, previous_stage=previous).stage[0] != "won_back"


def test_thresholds_move_customers_between_stages(shop: CustomerValue) -> None:
    follows = np.zeros(N + 300, dtype=bool)
    base = classify_lifecycle(shop, is_follower=follows, previous_stage=None)
    lax = classify_lifecycle(
        shop, is_follower=follows, previous_stage=None, p_alive_threshold=0.0, silent_gap_factor=1e9
    )
    strict = classify_lifecycle(shop, is_follower=follows, previous_stage=None, p_alive_threshold=0.99)
    assert not lax.churn_warning.any()
    assert strict.churn_warning.sum() > base.churn_warning.sum()
    never_churn = classify_lifecycle(
        shop, is_follower=follows, previous_stage=None, churn_days=1e9, churned_p_alive=0
    )
    assert never_churn.stage[5] == "at_risk"


def test_inputs_are_checked(shop: CustomerValue) -> None:
    with pytest.raises(ValueError, match="is_follower"):
        classify_lifecycle(shop, is_follower=[True], previous_stage=None)
    with pytest.raises(ValueError, match="previous_stage"):
        classify_lifecycle(shop, is_follower=np.zeros(N + 300, dtype=bool), previous_stage=["new"])


def test_empty_shop() -> None:
    v = customer_value(summarize_purchases([], [], [], n_customers=0, now=0.0))
    life = classify_lifecycle(v, is_follower=np.zeros(0, dtype=bool), previous_stage=None)
    assert life.stage.size == 0 and len(life.reasons) == 0 and life.churn_warning.size == 0


Changes = tuple[
    npt.NDArray[np.int64], npt.NDArray[np.object_], npt.NDArray[np.object_], npt.NDArray[np.float64]
]


def _changes(rows: list[tuple[int, str, int]]) -> Changes:
    """(customer, from, to, at) arrays from (customer, to, day) rows in time order."""
    customer = np.array([r[0] for r in rows], dtype=np.int64)
    to = [r[1] for r in rows]
    at = np.array([r[2] * DAY for r in rows])
    previous: dict[int, str] = {}
    frm: list[str | None] = []
    for c, s, _ in rows:
        frm.append(previous.get(c))
        previous[c] = s
    return customer, np.array(frm, dtype=object), np.array(to, dtype=object), at


def test_funnel_counts_conversions_and_time_in_stage() -> None:
    rows = [
        (1, "prospect", 0), (1, "new", 10), (1, "active", 40), (1, "loyal", 100),
        (2, "prospect", 0), (2, "new", 20), (2, "at_risk", 80), (2, "won_back", 90), (2, "active", 120),
        (3, "prospect", 5),
        (4, "new", 0), (4, "at_risk", 50), (4, "churned", 200),
    ]  # fmt: skip
    # Rows in any order give the same funnel.
    customer, frm, to, at = _changes(rows)
    f = funnel(customer, frm, to, at)
    order = np.random.default_rng(1).permutation(len(rows))
    g = funnel(customer[order], frm[order], to[order], at[order])
    assert (f.current, f.entered) == (g.current, g.entered)
    np.testing.assert_equal(f.conversion, g.conversion)
    np.testing.assert_equal(f.median_days_in_stage, g.median_days_in_stage)
    assert f.current == {
        "prospect": 1,
        "new": 0,
        "active": 1,
        "loyal": 1,
        "at_risk": 0,
        "churned": 1,
        "won_back": 0,
    }
    assert f.entered["prospect"] == 3 and f.entered["new"] == 3 and f.entered["at_risk"] == 2
    assert f.conversion[("prospect", "new")] == pytest.approx(2 / 3)
    assert f.conversion[("new", "active")] == pytest.approx(2 / 3)  # customer 2 reached active via won_back
    assert f.conversion[("at_risk", "won_back")] == pytest.approx(1 / 2)
    assert f.conversion[("at_risk", "churned")] == pytest.approx(1 / 2)
    assert f.conversion[("churned", "won_back")] == 0  # entered churned, never left
    # Completed stays: prospect 10 and 20 days, new 30, 60, 50 days; open stays are not counted.
    assert f.median_days_in_stage["prospect"] == 15 and f.median_days_in_stage["new"] == 50
    assert f.median_days_in_stage["at_risk"] == pytest.approx(np.median([10, 150]))
    assert np.isnan(f.median_days_in_stage["loyal"])
    empty = funnel([], [], [], np.array([], dtype=np.float64))
    assert sum(empty.current.values()) == 0 and np.isnan(empty.conversion[("new", "active")])
