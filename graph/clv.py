"""Probabilistic customer-lifetime models: BG/NBD for repeat purchases, Gamma-Gamma for spend.

Why our own implementation: the reference Python package, ``lifetimes`` 0.11.3, has been unmaintained since
2020; ``btyd`` (its fork) is a beta; ``pymc-marketing`` pulls in PyMC/PyTensor, far too heavy for two
closed-form likelihoods. Both models need only ``scipy.special`` (``gammaln``, ``digamma``, ``hyp2f1``) and
``scipy.optimize.minimize``. The log-likelihoods and their analytic gradients are vectorised over customers
and optimised on log-parameters (so the parameters stay positive) with L-BFGS-B; the terms that depend only on
the purchase count are computed once per distinct count, so 200,000 customers fit in a few tenths of a second.
Time and money are scaled to their means during the fit, so the start values suit any unit (days, weeks; fen,
dollars): the models are unit-free, and the returned parameters are in the caller's units.

The models, in brief: BG/NBD (Fader, Hardie & Lee 2005) says that while active a customer buys at a Poisson
rate drawn from Gamma(r, alpha), and after each repeat purchase becomes inactive with a probability drawn from
Beta(a, b). Gamma-Gamma (Fader & Hardie 2013) says the spend of each transaction is Gamma(p, nu) around the
customer's own mean, with nu drawn from Gamma(q, v), independently of how often they buy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import digamma, gammaln, hyp2f1

from scrm.errors import ModelFitError

__all__ = ["BGNBD", "GammaGamma", "discounted_purchases", "fit_bgnbd", "fit_gamma_gamma", "simulate_bgnbd"]

FloatArray = npt.NDArray[np.float64]


def _f(values: npt.ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


@dataclass(frozen=True)
class BGNBD:
    """A fitted BG/NBD model (Fader, Hardie & Lee 2005), in the time unit of the data it was fitted on.

    Attributes
    ----------
    r, alpha : float
        Shape and scale of the Gamma distribution of purchase rates while active (mean rate ``r / alpha``).
    a, b : float
        The Beta distribution of the drop-out probability after each purchase (mean ``a / (a + b)``).
    log_likelihood : float
        Log-likelihood of the fit data at these parameters.
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")

    def _odds_inactive(self, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
        """``a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)`` for repeat buyers, 0 otherwise."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            log_odds = (
                np.log(self.a)
                - np.log(self.b + x - 1.0)
                + (self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + t_x))
            )
            return np.where(x > 0, np.exp(log_odds), 0.0)

    def probability_alive(
        self, frequency: npt.ArrayLike, recency: npt.ArrayLike, T: npt.ArrayLike
    ) -> FloatArray:
        """P(the customer is still active | x, t_x, T), equation (11) of Fader, Hardie & Lee (2005).

        Customers without repeat purchases get 1: under BG/NBD nobody drops out before a repeat purchase.

        Examples
        --------
        >>> m = BGNBD(r=0.243, alpha=4.414, a=0.793, b=2.426)
        >>> m.probability_alive([0, 2, 2], [0, 30.43, 5.0], [38.86, 38.86, 38.86]).round(3).tolist()
        [1.0, 0.727, 0.124]
        """
        x, t_x, age = _f(frequency), _f(recency), _f(T)
        return 1.0 / (1.0 + self._odds_inactive(x, t_x, age))

    def expected_purchases(
        self, t: float | npt.ArrayLike, frequency: npt.ArrayLike, recency: npt.ArrayLike, T: npt.ArrayLike
    ) -> FloatArray:
        """Expected purchases in the next ``t`` time units, E[Y(t) | x, t_x, T], equation (10) of the paper.

        Examples
        --------
        The paper's example customer (CDNOW, weeks): 2 repeat purchases, the last in week 30.43 of 38.86.

        >>> m = BGNBD(r=0.243, alpha=4.414, a=0.793, b=2.426)
        >>> round(float(m.expected_purchases(39, 2, 30.43, 38.86)), 3)
        1.226
        """
        x, t_x, age, tt = _f(frequency), _f(recency), _f(T), _f(t)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = tt / (alpha + age + tt)
        log_ratio = (r + x) * (np.log(alpha + age) - np.log(alpha + age + tt))
        hyp = hyp2f1(r + x, b + x, a + b + x - 1.0, z)
        num = (a + b + x - 1.0) / (a - 1.0) * (1.0 - np.exp(log_ratio) * hyp)
        return np.asarray(num / (1.0 + self._odds_inactive(x, t_x, age)), dtype=np.float64)

    def unconditional_purchases(self, t: float | npt.ArrayLike) -> FloatArray:
        """E[X(t)]: expected purchases of a new customer in a period of length ``t`` (equation 9)."""
        tt = _f(t)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        hyp = hyp2f1(r, b, a + b - 1.0, tt / (alpha + tt))
        return np.asarray(
            (a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + tt)) ** r * hyp), dtype=np.float64
        )


def _dot(weights: FloatArray, values: FloatArray) -> float:
    """``sum(weights * values)``; ``weights @ values`` goes through BLAS, whose threads make it 100x slower
    on mid-sized arrays when the cores are busy."""
    return float(np.sum(weights * values))


@dataclass(frozen=True)
class _BGData:
    """BG/NBD fit data, split so that terms that depend only on ``x`` are computed once per distinct ``x``."""

    ux: FloatArray  # distinct frequencies
    wx: FloatArray  # total weight of each
    w_total: float
    T0: FloatArray  # customers without repeat purchases: age, weight
    w0: FloatArray
    x1: FloatArray  # repeat buyers: frequency, recency, age, weight
    tx1: FloatArray
    T1: FloatArray
    w1: FloatArray

    @classmethod
    def build(cls, x: FloatArray, t_x: FloatArray, T: FloatArray, w: FloatArray) -> _BGData:
        ux, inverse = np.unique(x, return_inverse=True)
        repeat = x > 0
        return cls(
            ux=ux,
            wx=np.bincount(inverse, weights=w, minlength=ux.size).astype(np.float64),
            w_total=float(w.sum()),
            T0=T[~repeat],
            w0=w[~repeat],
            x1=x[repeat],
            tx1=t_x[repeat],
            T1=T[repeat],
            w1=w[repeat],
        )


def _bgnbd_ll_grad(params: FloatArray, d: _BGData) -> tuple[float, FloatArray]:
    """Log-likelihood (summed, weighted) and its gradient with respect to (r, alpha, a, b).

    Per customer (Fader, Hardie & Lee 2005, eq. 6): ``ln B(a, b + x) / B(a, b) + ln Γ(r + x) / Γ(r) + r ln α
    + ln[(α + T)^-(r+x) + δ(x>0) a / (b + x - 1) (α + t_x)^-(r+x)]``.
    """
    r, alpha, a, b = params
    ux, wx, W = d.ux, d.wx, d.w_total
    # Terms that depend on x only, summed over the distinct x.
    ll = _dot(wx, (gammaln(r + ux) + gammaln(b + ux) - gammaln(a + b + ux)))
    ll += W * (r * np.log(alpha) - gammaln(r) + gammaln(a + b) - gammaln(b))
    psi_ab = digamma(a + b)
    psi_abx = _dot(wx, digamma(a + b + ux))
    d_r = _dot(wx, digamma(r + ux)) + W * (np.log(alpha) - digamma(r))
    d_alpha = W * r / alpha
    d_a = W * psi_ab - psi_abx
    d_b = W * (psi_ab - digamma(b)) + _dot(wx, digamma(b + ux)) - psi_abx
    # No repeat purchases: the likelihood's last term is (α + T)^-r.
    log_t0 = np.log(alpha + d.T0)
    ll -= r * _dot(d.w0, log_t0)
    d_r -= _dot(d.w0, log_t0)
    d_alpha -= r * _dot(d.w0, (1.0 / (alpha + d.T0)))
    # Repeat buyers: log-sum-exp of the two terms, with weights w3 + w4 = 1.
    rx = r + d.x1
    log_big = np.log(alpha + d.T1)
    log_small = np.log(alpha + d.tx1)
    l3 = -rx * log_big
    l4 = np.log(a) - np.log(b + d.x1 - 1.0) - rx * log_small
    lse = np.logaddexp(l3, l4)
    w4 = np.exp(l4 - lse)
    w3 = 1.0 - w4
    w1 = d.w1
    ll += _dot(w1, lse)
    d_r -= _dot(w1, (w3 * log_big + w4 * log_small))
    d_alpha -= _dot(w1, (rx * (w3 / (alpha + d.T1) + w4 / (alpha + d.tx1))))
    d_a += _dot(w1, w4) / a
    d_b -= _dot(w1, (w4 / (b + d.x1 - 1.0)))
    return ll, np.array([d_r, d_alpha, d_a, d_b], dtype=np.float64)


def _fit_log_params(
    ll_grad: Callable[[FloatArray], tuple[float, FloatArray]], start: FloatArray, model: str
) -> FloatArray:
    """Maximise a log-likelihood over log-parameters with L-BFGS-B; raise ModelFitError when it fails."""

    def objective(log_params: FloatArray) -> tuple[float, FloatArray]:
        params = np.exp(log_params)
        ll, grad = ll_grad(params)
        if not np.isfinite(ll) or not np.all(np.isfinite(grad)):
            return 1e300, np.zeros_like(log_params)
        return -ll, -grad * params

    res = minimize(objective, np.log(start), jac=True, method="L-BFGS-B", bounds=[(-20.0, 20.0)] * start.size)
    params = np.exp(res.x)
    if not np.all(np.isfinite(params)) or res.fun >= 1e299:
        raise ModelFitError(f"{model} fit failed: {res.message}")
    return np.asarray(params, dtype=np.float64)


def fit_bgnbd(
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
    *,
    weights: npt.ArrayLike | None = None,
) -> BGNBD:
    """Fit the BG/NBD model by maximum likelihood.

    Parameters
    ----------
    frequency, recency, T : array_like
        Per customer: repeat purchases ``x``, time of the last purchase since the first ``t_x``, and age ``T``
        (any time unit; see :class:`graph.rfm.PurchaseSummary`). Only customers with ``T > 0`` are used.
    weights : array_like, optional
        How many customers each row stands for (for data compressed to distinct rows).

    Returns
    -------
    BGNBD
        The fitted parameters, in the time unit of the input, with the log-likelihood.

    Raises
    ------
    scrm.errors.ModelFitError
        Too few customers or repeat buyers to fit, inconsistent data, or the optimiser failed.

    Examples
    --------
    Simulated customers: a Gamma(0.5, 10) purchase rate per day and a Beta(1, 3) drop-out chance:

    >>> rng = np.random.default_rng(7)
    >>> x, t_x, T = simulate_bgnbd(rng, 20_000, r=0.5, alpha=10.0, a=1.0, b=3.0, T=200.0)
    >>> m = fit_bgnbd(x, t_x, T)
    >>> round(m.r, 2), round(m.alpha, 1), round(m.a, 2), round(m.b, 2)
    (0.5, 10.1, 0.99, 2.98)

    References
    ----------
    .. [1] P. S. Fader, B. G. S. Hardie and K. L. Lee, "'Counting your customers' the easy way: an alternative
       to the Pareto/NBD model", Marketing Science 24(2), 275-284, 2005.
    """
    x, t_x, age = _f(frequency).ravel(), _f(recency).ravel(), _f(T).ravel()
    w = np.ones_like(x) if weights is None else _f(weights).ravel()
    if not (x.shape == t_x.shape == age.shape == w.shape):
        raise ModelFitError("frequency, recency, T (and weights) must have the same length")
    use = (age > 0) & (w > 0)
    x, t_x, age, w = x[use], t_x[use], age[use], w[use]
    if np.count_nonzero(x > 0) < 2:
        raise ModelFitError(f"BG/NBD needs repeat buyers to fit; found {np.count_nonzero(x > 0)}")
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > age * (1 + 1e-9)):
        raise ModelFitError("BG/NBD data must have frequency >= 0 and 0 <= recency <= T")
    scale = float(np.average(age, weights=w))
    scaled = _BGData.build(x, t_x / scale, age / scale, w)
    params = _fit_log_params(lambda p: _bgnbd_ll_grad(p, scaled), np.array([1.0, 1.0, 1.0, 1.0]), "BG/NBD")
    r, alpha, a, b = params
    alpha *= scale
    ll, _ = _bgnbd_ll_grad(np.array([r, alpha, a, b]), _BGData.build(x, t_x, age, w))
    return BGNBD(r=float(r), alpha=float(alpha), a=float(a), b=float(b), log_likelihood=float(ll))


def simulate_bgnbd(
    rng: np.random.Generator, n: int, *, r: float, alpha: float, a: float, b: float, T: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Draw ``n`` customers from the BG/NBD model, all observed for ``T``; return (frequency, recency, T)."""
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    now = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        now[idx] += rng.exponential(1.0, idx.size) / lam[idx]
        bought = now[idx] < T
        hit = idx[bought]
        x[hit] += 1
        t_x[hit] = now[hit]
        alive[idx[~bought]] = False
        alive[hit] = rng.random(hit.size) >= p[hit]
    return x, t_x, np.full(n, float(T))


@dataclass(frozen=True)
class GammaGamma:
    """A fitted Gamma-Gamma spend model (Fader & Hardie 2013), in the money unit of the data it was fitted on.

    Attributes
    ----------
    p : float
        Shape of the Gamma distribution of each transaction's value around the customer's mean.
    q, v : float
        Shape and scale of the Gamma distribution of the customers' rate parameters; the population mean spend
        per transaction is ``p * v / (q - 1)`` (finite when ``q > 1``).
    log_likelihood : float
        Log-likelihood of the fit data at these parameters.
    """

    p: float
    q: float
    v: float
    log_likelihood: float = float("nan")

    def expected_spend(self, frequency: npt.ArrayLike, monetary: npt.ArrayLike) -> FloatArray:
        """E[spend per transaction | x, zbar]: a weighted mean of the population mean and the customer's own.

        With ``x = 0`` (no repeat transactions observed) this is the population mean ``p v / (q - 1)``.

        Examples
        --------
        >>> gg = GammaGamma(p=6.25, q=3.74, v=15.44)
        >>> gg.expected_spend([0, 1, 10], [0.0, 50.0, 50.0]).round(2).tolist()
        [35.22, 45.49, 49.38]
        """
        x, zbar = _f(frequency), _f(monetary)
        return np.asarray(self.p * (self.v + x * zbar) / (self.p * x + self.q - 1.0), dtype=np.float64)


@dataclass(frozen=True)
class _GGData:
    """Gamma-Gamma fit data: distinct ``x`` with counts, and the sums that do not depend on the parameters."""

    ux: FloatArray
    count: FloatArray
    n: float
    x: FloatArray
    xz: FloatArray  # x * zbar: the customer's total repeat spend
    sum_log_z: float
    sum_x_log_z: float

    @classmethod
    def build(cls, x: FloatArray, zbar: FloatArray) -> _GGData:
        ux, inverse = np.unique(x, return_inverse=True)
        log_z = np.log(zbar)
        return cls(
            ux=ux,
            count=np.bincount(inverse, minlength=ux.size).astype(np.float64),
            n=float(x.size),
            x=x,
            xz=x * zbar,
            sum_log_z=float(log_z.sum()),
            sum_x_log_z=float(np.sum(x * log_z)),
        )


def _gg_ll_grad(params: FloatArray, d: _GGData) -> tuple[float, FloatArray]:
    """Log-likelihood and gradient in (p, q, v); per customer (Fader & Hardie 2013, eq. 5):
    ``ln Γ(px + q) - ln Γ(px) - ln Γ(q) + q ln v + (px - 1) ln zbar + px ln x - (px + q) ln(x zbar + v)``."""
    p, q, v = params
    pu = p * d.ux
    psi_puq = digamma(pu + q)
    log_u = np.log(d.ux)
    log_xz_v = np.log(d.xz + v)
    sum_log_xz_v = float(log_xz_v.sum())
    sum_x_log_xz_v = float(np.sum(d.x * log_xz_v))
    ll = _dot(d.count, gammaln(pu + q) - gammaln(pu) + pu * log_u)
    ll += d.n * (q * np.log(v) - gammaln(q)) + p * d.sum_x_log_z - d.sum_log_z
    ll -= p * sum_x_log_xz_v + q * sum_log_xz_v
    d_p = _dot(d.count, d.ux * (psi_puq - digamma(pu) + log_u)) + d.sum_x_log_z - sum_x_log_xz_v
    d_q = _dot(d.count, psi_puq) + d.n * (np.log(v) - digamma(q)) - sum_log_xz_v
    d_v = d.n * q / v - float(np.sum((p * d.x + q) / (d.xz + v)))
    return float(ll), np.array([d_p, d_q, d_v], dtype=np.float64)


def fit_gamma_gamma(frequency: npt.ArrayLike, monetary: npt.ArrayLike) -> GammaGamma:
    """Fit the Gamma-Gamma spend model on the repeat buyers (``frequency > 0`` and ``monetary > 0``).

    Parameters
    ----------
    frequency : array_like
        Repeat transactions ``x`` per customer.
    monetary : array_like
        Mean value of those repeat transactions, ``zbar`` (any money unit).

    Returns
    -------
    GammaGamma

    Raises
    ------
    scrm.errors.ModelFitError
        Fewer than 2 repeat buyers with a positive spend, or the optimiser failed.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> x = rng.integers(1, 10, 3000).astype(float)
    >>> nu = rng.gamma(4.0, 1 / 20.0, 3000)                     # q = 4, v = 20
    >>> zbar = rng.gamma(6.0 * x, 1.0 / (nu * x))               # mean of x draws of Gamma(p = 6, nu)
    >>> gg = fit_gamma_gamma(x, zbar)
    >>> round(gg.p, 1), round(gg.q, 1), round(gg.v, 1)
    (6.5, 3.9, 18.5)

    References
    ----------
    .. [1] P. S. Fader and B. G. S. Hardie, "The Gamma-Gamma model of monetary value", 2013,
       http://www.brucehardie.com/notes/025/.
    """
    x_all, z_all = _f(frequency).ravel(), _f(monetary).ravel()
    use = (x_all > 0) & (z_all > 0)
    x, zbar = x_all[use], z_all[use]
    if x.size < 2:
        raise ModelFitError(f"Gamma-Gamma needs repeat buyers with a spend to fit; found {x.size}")
    scale = float(zbar.mean())
    scaled = _GGData.build(x, zbar / scale)
    params = _fit_log_params(lambda prm: _gg_ll_grad(prm, scaled), np.array([1.0, 2.0, 1.0]), "Gamma-Gamma")
    p, q, v = params
    v *= scale
    ll, _ = _gg_ll_grad(np.array([p, q, v]), _GGData.build(x, zbar))
    return GammaGamma(p=float(p), q=float(q), v=float(v), log_likelihood=ll)


def discounted_purchases(
    model: BGNBD,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
    *,
    horizon: float,
    discount_per_unit: float,
    steps: int,
) -> tuple[FloatArray, FloatArray]:
    """Discounted and plain expected purchases over ``(0, horizon]``.

    The horizon is cut into ``steps`` equal slices; the purchases expected in each slice,
    ``E[Y(t_k)] - E[Y(t_(k-1))]``, are discounted at the slice's midpoint by ``(1 + d) ** -t`` with ``d`` the
    discount rate per time unit. Returns ``(discounted, E[Y(horizon)])``.
    """
    x, t_x, age = _f(frequency), _f(recency), _f(T)
    total = np.zeros(np.broadcast_shapes(x.shape, t_x.shape, age.shape))
    prev = np.zeros_like(total)
    step = horizon / max(steps, 1)
    for k in range(1, max(steps, 1) + 1):
        cur = model.expected_purchases(k * step, x, t_x, age)
        total += (cur - prev) * (1.0 + discount_per_unit) ** (-(k - 0.5) * step)
        prev = cur
    return total, prev
