"""Customer value: RFM scores, the probability of being active, expected purchases and lifetime value.

The building blocks live in :mod:`graph.rfm` (purchase summaries, RFM) and :mod:`graph.clv` (BG/NBD and
Gamma-Gamma); this module re-exports them and combines them in :func:`customer_value`, the one call the
scoring pipeline makes. All inputs and outputs are numpy arrays indexed by customer (node) index; times in
days, money in minor units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from graph.clv import BGNBD, GammaGamma, discounted_purchases, fit_bgnbd, fit_gamma_gamma
from graph.rfm import PurchaseSummary, rfm_scores, summarize_purchases
from scrm.errors import ModelFitError

__all__ = [
    "BGNBD",
    "MIN_REPEAT_BUYERS",
    "CustomerValue",
    "GammaGamma",
    "PurchaseSummary",
    "customer_value",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "lifetime_value",
    "rfm_scores",
    "summarize_purchases",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MIN_REPEAT_BUYERS = 20
"""Fewer repeat buyers than this and :func:`customer_value` uses its simple estimate instead of fitted
models."""

MAX_FIT_CUSTOMERS = 200_000
"""Larger customer bases are fitted on a seeded random sample of this size (the estimates are then already
precise to about 1 %, and the fit stays under a second)."""


def _steps(horizon_days: float) -> int:
    """Quarterly slices for discounting: the midpoint rule is then exact to well under 0.1 %."""
    return max(1, math.ceil(horizon_days / 91.3125))


def _daily_rate(discount_rate_yearly: float) -> float:
    return float((1.0 + discount_rate_yearly) ** (1.0 / 365.0) - 1.0)


def lifetime_value(
    bgnbd: BGNBD,
    gg: GammaGamma,
    summary: PurchaseSummary,
    *,
    horizon_days: float = 365,
    discount_rate_yearly: float = 0.1,
) -> FloatArray:
    """Expected spend over the next ``horizon_days``, discounted to today (minor units).

    The purchases BG/NBD expects in each quarter of the horizon are discounted at the quarter's midpoint and
    multiplied by the spend per purchase that Gamma-Gamma expects for the customer (the method of Fader,
    Hardie & Lee 2005, "RFM and CLV", with a finite horizon). Customers who never bought get 0. Both models
    must have been fitted in days and minor units, as :func:`customer_value` does.

    Examples
    --------
    >>> day = 86_400.0
    >>> s = summarize_purchases([0, 0, 0, 1], [0, 30 * day, 60 * day, 0], [5000, 4000, 6000, 5000],
    ...                         n_customers=3, now=90 * day)
    >>> bg = BGNBD(r=0.5, alpha=40.0, a=0.8, b=2.5)
    >>> gg = GammaGamma(p=6.0, q=4.0, v=15_000.0)
    >>> lifetime_value(bg, gg, s).round(-2).tolist()
    [29800.0, 29100.0, 0.0]

    References
    ----------
    .. [1] P. S. Fader, B. G. S. Hardie and K. L. Lee, "RFM and CLV: using iso-value curves for customer base
       analysis", Journal of Marketing Research 42(4), 415-430, 2005.
    .. [2] P. S. Fader and B. G. S. Hardie, "The Gamma-Gamma model of monetary value", 2013.
    """
    buyer = summary.is_buyer
    out = np.zeros(summary.n_customers)
    disc, _ = discounted_purchases(
        bgnbd,
        summary.frequency[buyer],
        summary.recency[buyer],
        summary.T[buyer],
        horizon=horizon_days,
        discount_per_unit=_daily_rate(discount_rate_yearly),
        steps=_steps(horizon_days),
    )
    out[buyer] = disc * gg.expected_spend(summary.frequency[buyer], summary.monetary[buyer])
    return out


@dataclass(frozen=True)
class CustomerValue:
    """Everything known about each customer's value (arrays indexed by customer).

    Attributes
    ----------
    summary : PurchaseSummary
    r, f, m : ndarray of int64
        RFM quintile scores (1..5, 0 for non-buyers), see :func:`graph.rfm.rfm_scores`.
    rfm_code : ndarray of str
        ``"545"``-style codes.
    p_alive : ndarray
        Probability that the customer is still active (``nan`` for customers who never bought).
    expected_purchases : ndarray
        Purchases expected over the horizon (not discounted).
    clv : ndarray
        Expected spend over the horizon, discounted (minor units).
    bgnbd : BGNBD or None
        The fitted purchase model (time unit: days), None when the simple estimate was used.
    gamma_gamma : GammaGamma or None
        The fitted spend model (minor units), None when the simple estimate was used.
    expected_spend : ndarray
        Spend expected per future purchase (minor units; 0 for non-buyers).
    method : str
        How the numbers were made: ``"bgnbd+gamma_gamma"``, ``"bgnbd+own_mean"``, ``"simple+gamma_gamma"`` or
        ``"simple"`` (see :func:`customer_value`).
    horizon_days : float
        The horizon of ``expected_purchases`` and ``clv``.
    """

    summary: PurchaseSummary
    r: IntArray
    f: IntArray
    m: IntArray
    rfm_code: npt.NDArray[np.str_]
    p_alive: FloatArray
    expected_purchases: FloatArray
    clv: FloatArray
    bgnbd: BGNBD | None
    gamma_gamma: GammaGamma | None
    expected_spend: FloatArray
    method: str
    horizon_days: float


def _fit_sample(n: int, limit: int, seed: int) -> npt.NDArray[np.intp] | slice:
    if n <= limit:
        return slice(None)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _simple_purchases(
    summary: PurchaseSummary, buyer: npt.NDArray[np.bool_], horizon_days: float, discount_rate_yearly: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The fallback purchase model: (p_alive, expected purchases, discounted expected purchases), buyers."""
    x, age = summary.frequency[buyer], summary.T[buyer]
    silence = summary.last_purchase_days_ago[buyer]
    total_age = float(age.sum())
    pooled = float(x.sum()) / total_age if total_age > 0 else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where((x > 0) & (age > 0), x / age, pooled)
    # Odds of having dropped out after the last purchase by Laplace's rule of succession (x of x + 1 chances
    # to stop were not taken: P(stop) = 1 / (x + 2)), against the chance of a silence this long at their rate.
    with np.errstate(over="ignore"):
        p_alive = 1.0 / (1.0 + np.expm1(rate * silence) / (x + 1.0))
    step = horizon_days / _steps(horizon_days)
    mids = (np.arange(_steps(horizon_days)) + 0.5) * step
    discount = float(np.sum((1.0 + discount_rate_yearly) ** (-mids / 365.0)) * step)
    return p_alive, p_alive * rate * horizon_days, p_alive * rate * discount


def customer_value(
    summary: PurchaseSummary,
    *,
    horizon_days: float = 365,
    discount_rate_yearly: float = 0.1,
    min_repeat_buyers: int = MIN_REPEAT_BUYERS,
    max_fit_customers: int = MAX_FIT_CUSTOMERS,
    seed: int = 0,
) -> CustomerValue:
    """RFM, P(active), expected purchases and discounted lifetime value of every customer.

    Parameters
    ----------
    summary : PurchaseSummary
        From :func:`summarize_purchases` (days, minor units).
    horizon_days : float, default 365
        Horizon of the expected purchases and of the lifetime value.
    discount_rate_yearly : float, default 0.1
        Discount rate of future spend.
    min_repeat_buyers : int, default 20
        With at least this many repeat buyers BG/NBD and Gamma-Gamma are fitted; below it (a new or small
        store, the demo) the estimates are unstable and the simple estimate below is used instead.
    max_fit_customers : int, default 200,000
        Larger bases are fitted on a random sample of this many customers (drawn with ``seed``); the fitted
        models are then applied to everyone.
    seed : int, default 0

    Returns
    -------
    CustomerValue
        With fitted models: ``p_alive`` and ``expected_purchases`` from BG/NBD, spend per purchase from
        Gamma-Gamma, CLV from :func:`lifetime_value`. Never raises on small data; a model that cannot be
        fitted (:class:`scrm.errors.ModelFitError`, or Gamma-Gamma with ``q <= 1``, whose mean spend is
        infinite) is replaced by its simple estimate, and ``method`` says which was used:

        - simple purchase model: a repeat buyer buys at their own rate ``x / T``, a one-time buyer at the
          store's pooled rate ``sum(x) / sum(T)``; the odds of having dropped out are those of Laplace's rule
          of succession, ``1 / (x + 1)``, weighed against a silence this long at that rate: ``p_alive = 1 / (1
          + (exp(rate * silence) - 1) / (x + 1))``; expected purchases are ``p_alive * rate * horizon``.
        - simple spend model: the customer's own mean spend per purchase day.

    Examples
    --------
    Three customers and no repeat-buyer base to fit: the simple estimate.

    >>> day = 86_400.0
    >>> s = summarize_purchases([0, 0, 0, 1], [0, 30 * day, 60 * day, 0], [5000, 4000, 6000, 5000],
    ...                         n_customers=3, now=90 * day)
    >>> v = customer_value(s)
    >>> v.method, v.rfm_code.tolist()
    ('simple', ['551', '111', '000'])
    >>> v.p_alive.round(2).tolist(), v.expected_purchases.round(1).tolist(), v.clv.round(-2).tolist()
    ([0.76, 0.37, nan], [6.2, 1.5, 0.0], [29400.0, 7100.0, 0.0])

    References
    ----------
    .. [1] P. S. Fader, B. G. S. Hardie and K. L. Lee, "'Counting your customers' the easy way: an alternative
       to the Pareto/NBD model", Marketing Science 24(2), 275-284, 2005.
    .. [2] P. S. Fader and B. G. S. Hardie, "The Gamma-Gamma model of monetary value", 2013.
    """
    n = summary.n_customers
    buyer = summary.is_buyer
    r, f, m, code = rfm_scores(summary)
    x, t_x, age, zbar = summary.frequency, summary.recency, summary.T, summary.monetary
    repeat_buyers = int(np.count_nonzero(buyer & (x > 0)))

    bgnbd: BGNBD | None = None
    gg: GammaGamma | None = None
    if repeat_buyers >= min_repeat_buyers:
        idx = np.flatnonzero(buyer)
        sample = idx[_fit_sample(idx.size, max_fit_customers, seed)]
        try:
            bgnbd = fit_bgnbd(x[sample], t_x[sample], age[sample])
        except ModelFitError:
            bgnbd = None
        rep = idx[x[idx] > 0]
        rep = rep[_fit_sample(rep.size, max_fit_customers, seed)]
        try:
            gg = fit_gamma_gamma(x[rep], zbar[rep])
        except ModelFitError:
            gg = None
        if gg is not None and gg.q <= 1.0:
            gg = None

    p_alive = np.full(n, np.nan)
    expected = np.zeros(n)
    discounted = np.zeros(n)
    spend = np.zeros(n)
    if bgnbd is not None:
        p_alive[buyer] = bgnbd.probability_alive(x[buyer], t_x[buyer], age[buyer])
        discounted[buyer], expected[buyer] = discounted_purchases(
            bgnbd,
            x[buyer],
            t_x[buyer],
            age[buyer],
            horizon=horizon_days,
            discount_per_unit=_daily_rate(discount_rate_yearly),
            steps=_steps(horizon_days),
        )
    simple = _simple_purchases(summary, buyer, horizon_days, discount_rate_yearly)
    # The simple estimate everywhere without a fitted model, and wherever the model's numbers are not finite
    # (hyp2f1 can overflow for extreme histories under a degenerate fit).
    bad = ~(np.isfinite(p_alive[buyer]) & np.isfinite(expected[buyer]) & np.isfinite(discounted[buyer]))
    if bgnbd is None or bad.any():
        for target, fallback in zip((p_alive, expected, discounted), simple, strict=True):
            values = target[buyer]
            values[bad] = fallback[bad]
            target[buyer] = values
    if gg is not None:
        spend[buyer] = gg.expected_spend(x[buyer], zbar[buyer])
    else:
        spend[buyer] = summary.total_spend[buyer] / (x[buyer] + 1.0)
    method = ("bgnbd" if bgnbd is not None else "simple") + ("+gamma_gamma" if gg is not None else "")
    if method == "bgnbd":
        method = "bgnbd+own_mean"
    return CustomerValue(
        summary=summary,
        r=r,
        f=f,
        m=m,
        rfm_code=code,
        p_alive=p_alive,
        expected_purchases=expected,
        clv=discounted * spend,
        bgnbd=bgnbd,
        gamma_gamma=gg,
        expected_spend=spend,
        method=method,
        horizon_days=float(horizon_days),
    )
