"""A reproducible synthetic order export, in the format :mod:`connectors.orders` reads.

Used for the demo's bundled sample and for benchmarks. Buyers' order counts are heavy-tailed (most buy
once, a few buy dozens of times), amounts are log-normal, and buyers are known by a phone, an email or
an openid; some rows carry two keys, which makes the import merge customers it first saw separately.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["generate_orders", "write_orders"]

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰"
_PREFIXES = ("138", "139", "135", "150", "159", "186", "187", "188", "177", "199")
HEADER = ("order_id", "time", "amount", "currency", "phone", "email", "openid", "name")


def generate_orders(
    rows: int,
    *,
    customers: int,
    seed: int = 42,
    shop: str = "shop",
    start: datetime | None = None,
    days: int = 365,
) -> Iterator[tuple[str, ...]]:
    """Yield ``rows`` order rows (HEADER order) from ``customers`` buyers, reproducibly.

    ``shop="shop"`` knows buyers by phone (70%) or openid; ``shop="mall"`` by email, and a third of
    its rows also carry the phone, which links them to the shop's customers.
    """
    rng = random.Random(f"{seed}:{shop}")
    start = start or datetime(2025, 11, 1, tzinfo=UTC)
    # Pareto weights give a heavy tail of frequent buyers.
    weights = [rng.paretovariate(1.3) for _ in range(customers)]
    buyers = rng.choices(range(customers), weights=weights, k=rows)
    span = days * 86_400
    for n, buyer in enumerate(buyers):
        local = random.Random(seed * 1_000_003 + buyer)  # the same buyer always has the same keys
        phone = f"{local.choice(_PREFIXES)}{local.randrange(10**8):08d}"
        email = f"buyer{buyer}@example.com"
        openid = f"o{seed:04d}{buyer:08d}sim"
        if shop == "mall":
            use_phone, use_email, use_openid = n % 3 == 2, True, False
        else:
            use_openid = buyer % 10 >= 7
            use_phone, use_email = not use_openid, False
        when = start + timedelta(seconds=rng.randrange(span))
        amount = round(min(rng.lognormvariate(4.6, 0.9), 20_000.0), 2)
        name = local.choice(_SURNAMES) + "".join(local.choices(_GIVEN, k=local.choice((1, 2))))
        yield (
            f"{shop[:2].upper()}{seed:03d}{n:09d}",
            when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            f"{amount:.2f}",
            "CNY",
            phone if use_phone else "",
            email if use_email else "",
            openid if use_openid else "",
            name,
        )


def write_orders(path: str | Path, rows: int, *, customers: int, seed: int = 42, shop: str = "shop") -> Path:
    """Write an order export, CSV or (for a .jsonl name) JSON Lines; return its path."""
    path = Path(path)
    data = generate_orders(rows, customers=customers, seed=seed, shop=shop)
    with path.open("w", newline="", encoding="utf-8") as out:
        if path.suffix == ".jsonl":
            for row in data:
                record = {k: v for k, v in zip(HEADER, row, strict=True) if v}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            writer = csv.writer(out)
            writer.writerow(HEADER)
            writer.writerows(data)
    return path
