"""Customer value at scale: purchase summaries, BG/NBD + Gamma-Gamma, lifecycle and social value from arrays.

``.venv/bin/python bench/bench_value.py`` (1,000,000 customers, 5,000,000 purchases) or
``--customers 100000 --purchases 500000`` for a quick run. Purchases are generated from the BG/NBD model
itself (seeded), shuffled, with lognormal amounts; the table gives each step's wall time and the peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from graph.lifecycle import classify_lifecycle
from graph.social import social_value
from graph.value import customer_value, summarize_purchases

DAY = 86_400.0


def generate(customers: int, purchases: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Purchases over two years from the BG/NBD story: 70 % of the customers buy, first at a uniform time,
    then at a Gamma-distributed Poisson rate until they drop out (a Beta-distributed chance after each
    repeat purchase). The rate is scaled so that about ``purchases`` purchases are made."""
    rng = np.random.default_rng(seed)
    buyers = int(customers * 0.7)
    horizon = 730.0
    r, a, b = 0.6, 0.8, 3.0
    # Purchases per buyer grow with the rate; this scale (found by trial) gives about the asked-for total.
    per_buyer = purchases / buyers
    alpha = 0.6 * horizon / (per_buyer - 1.0) / 8.0
    rate = rng.gamma(r, 1.0 / alpha, buyers)
    drop = rng.beta(a, b, buyers)
    clock = rng.uniform(0, horizon, buyers)
    owners = [np.arange(buyers)]
    times = [clock.copy()]
    alive = np.arange(buyers)  # BG/NBD: no drop-out before the first repeat purchase
    while alive.size:
        clock[alive] += rng.exponential(1.0, alive.size) / rate[alive]
        bought = alive[clock[alive] < horizon]
        owners.append(bought)
        times.append(clock[bought].copy())
        alive = bought[rng.random(bought.size) >= drop[bought]]
    owner = np.concatenate(owners)
    when = np.concatenate(times)
    order = rng.permutation(owner.size)
    customer = rng.permutation(customers)[:buyers][owner[order]]
    amounts = np.round(rng.lognormal(8.5, 0.8, owner.size))
    return customer, when[order] * DAY, amounts, horizon * DAY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--purchases", type=int, default=5_000_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    customer, times, amounts, now = generate(args.customers, args.purchases, args.seed)
    n = args.customers
    rng = np.random.default_rng(args.seed + 1)
    rows: list[tuple[str, float, str]] = []

    def step(name: str, started: float, note: str = "") -> None:
        rows.append((name, time.perf_counter() - started, note))

    t0 = time.perf_counter()
    summary = summarize_purchases(customer, times, amounts, n_customers=n, now=now, utc_offset_hours=8)
    step("summarize_purchases", t0, f"{times.size:,} purchases, {int(summary.is_buyer.sum()):,} buyers")
    t = time.perf_counter()
    value = customer_value(summary)
    assert value.bgnbd is not None and value.gamma_gamma is not None
    step(
        "customer_value",
        t,
        f"{value.method}; r={value.bgnbd.r:.3f} alpha={value.bgnbd.alpha:.1f} a={value.bgnbd.a:.3f} "
        f"b={value.bgnbd.b:.3f}",
    )
    t = time.perf_counter()
    life = classify_lifecycle(value, is_follower=rng.random(n) < 0.6, previous_stage=None)
    stages, counts = np.unique(life.stage.astype(str), return_counts=True)
    step("classify_lifecycle", t, ", ".join(f"{s} {c:,}" for s, c in zip(stages, counts, strict=True)))
    t = time.perf_counter()
    sv = social_value(
        {
            "influence": rng.pareto(1.5, n),
            "reach": rng.integers(0, 1000, n).astype(float),
            "community": (rng.random(n) < 0.05).astype(float),
            "lifetime_value": value.clv,
        },
        {"influence": 0.35, "reach": 0.15, "community": 0.10, "lifetime_value": 0.40},
    )
    step("social_value", t, f"mean score {sv.score.mean():.1f}")
    total = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"customer value: {n:,} customers, {times.size:,} purchases, seed {args.seed}")
    print(f"{'step':<22}{'seconds':>9}  notes")
    for name, seconds, note in rows:
        print(f"{name:<22}{seconds:>9.2f}  {note}")
    print(f"{'total':<22}{total:>9.2f}  peak RSS {peak_mb:,.0f} MB (including the generated input)")


if __name__ == "__main__":
    main()
