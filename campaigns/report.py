"""What a campaign achieved: per variant and for the control group, sent, failed, replied, purchased,
and the uplift over control with a confidence interval.

Counts are *intention to treat*: every customer assigned to a group (sent, failed, in doubt or held out;
not those skipped before assignment) is in its denominator, so a variant's failures count against it.
A customer *replied* when they sent us a message, and *purchased* when an order of theirs is stored,
within ``attribution_days`` after the send (for the control group: after the run started).

The interval of each rate is Wilson's score interval; the interval of the difference between a variant
and control is Newcombe's hybrid score interval (method 10), which keeps its coverage for small
groups and rates near 0 or 1 where the normal approximation does not.

References
----------
.. [1] E. B. Wilson, "Probable inference, the law of succession, and statistical inference",
   J. Am. Stat. Assoc. 22 (1927) 209-212.
.. [2] R. G. Newcombe, "Interval estimation for the difference between independent proportions:
   comparison of eleven methods", Statistics in Medicine 17 (1998) 873-890.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from campaigns.campaign import CONTROL
from scrm.models import CampaignRun, Delivery, Interaction, Purchase
from scrm.store import Store

__all__ = ["GroupReport", "campaign_report", "newcombe_interval", "wilson_interval"]

run_t = CampaignRun.__table__  # type: ignore[attr-defined]
delivery_t = Delivery.__table__  # type: ignore[attr-defined]
inter_t = Interaction.__table__  # type: ignore[attr-defined]
purchase_t = Purchase.__table__  # type: ignore[attr-defined]

Z95 = 1.959963984540054
REPLY_KINDS = ("text", "image", "voice", "video", "shortvideo", "location", "link")
ASSIGNED = ("sent", "failed", "unknown", "control", "sending", "planned")


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a proportion [1]_.

    >>> [round(x, 4) for x in wilson_interval(81, 263)]   # Newcombe (1998), Table I, example (a)
    [0.2553, 0.3662]
    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    """
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denominator = 1 + z * z / n
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def newcombe_interval(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """(difference, low, high) of ``x1/n1 - x2/n2`` by Newcombe's hybrid score interval [2]_.

    >>> [round(v, 4) for v in newcombe_interval(56, 70, 48, 80)]   # Newcombe (1998), Table II, (a)
    [0.2, 0.0524, 0.3339]
    """
    p1 = x1 / n1 if n1 else 0.0
    p2 = x2 / n2 if n2 else 0.0
    l1, u1 = wilson_interval(x1, n1, z)
    l2, u2 = wilson_interval(x2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, low, high


@dataclass
class GroupReport:
    """One variant (or the control group) of a campaign."""

    group: str
    assigned: int
    sent: int
    failed: int
    unknown: int
    replied: int
    purchased: int
    reply_rate: float
    purchase_rate: float
    reply_uplift: tuple[float, float, float] | None = None  # (difference, low, high) vs control
    purchase_uplift: tuple[float, float, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def campaign_report(store: Store, campaign: str, attribution_days: float) -> list[GroupReport]:
    """Per group of every run of ``campaign``: counts, rates and uplift over control (95 %)."""
    d, r = delivery_t.c, run_t.c
    start = sa.func.coalesce(d.sent_at, r.started_at)
    window = timedelta(days=attribution_days)
    with store.connect() as conn:
        rows = conn.execute(
            sa.select(d.customer_id, d.variant, d.status, start)
            .join(run_t, r.id == d.run_id)
            .where(r.campaign == campaign, d.status.in_(ASSIGNED))
        ).all()
        firsts: dict[int, Any] = {}
        for cid, _, _, at in rows:
            if cid not in firsts or at < firsts[cid]:
                firsts[cid] = at
        customers = sa.select(d.customer_id).join(run_t, r.id == d.run_id).where(r.campaign == campaign)
        earliest = min(firsts.values()) if firsts else None
        acted: dict[str, set[int]] = {"reply": set(), "purchase": set()}
        if earliest is not None:
            for what, table, extra in (
                ("reply", inter_t, inter_t.c.kind.in_(REPLY_KINDS)),
                ("purchase", purchase_t, sa.true()),
            ):
                t = table.c
                for cid, at in conn.execute(
                    sa.select(t.customer_id, t.occurred_at).where(
                        t.customer_id.in_(customers), t.occurred_at > earliest, extra
                    )
                ):
                    first = firsts.get(cid)
                    if first is not None and first < at <= first + window:
                        acted[what].add(cid)
    groups: dict[str, dict[str, set[int]]] = {}
    for cid, variant, status, _ in rows:
        g = groups.setdefault(variant, {k: set() for k in ("assigned", "sent", "failed", "unknown")})
        g["assigned"].add(cid)
        if status in ("sent", "failed", "unknown"):
            g[status].add(cid)
    reports = []
    for name in sorted(groups, key=lambda n: (n == CONTROL, n)):
        g = groups[name]
        n = len(g["assigned"])
        replied = len(g["assigned"] & acted["reply"])
        bought = len(g["assigned"] & acted["purchase"])
        reports.append(
            GroupReport(
                name,
                n,
                len(g["sent"]),
                len(g["failed"]),
                len(g["unknown"]),
                replied,
                bought,
                replied / n if n else 0.0,
                bought / n if n else 0.0,
            )
        )
    control = next((g for g in reports if g.group == CONTROL), None)
    if control is not None and control.assigned:
        for arm in reports:
            if arm.group != CONTROL and arm.assigned:
                arm.reply_uplift = newcombe_interval(
                    arm.replied, arm.assigned, control.replied, control.assigned
                )
                arm.purchase_uplift = newcombe_interval(
                    arm.purchased, arm.assigned, control.purchased, control.assigned
                )
    return reports
