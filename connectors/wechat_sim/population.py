"""A reproducible population for the WeChat simulator: followers, referrals, actions, shares, orders.

Everything follows from ``seed``. Followers are numbered in the order they first subscribed; most of
them came through search, channel QR codes (``poster_mall_sh``, ``store_bj_01``, ``kol_xiaohong``...)
or other scenes, and about a third through another follower's personal code (scene string
``ref_<referrer openid>``). Referrers are picked by preferential attachment among the minority who
ever invite (a Price process), so the referral forest is heavy-tailed: most invite no one, a few
invite hundreds in a large population. Followers belong to planted communities (inherited from the
referrer most of the time) in which article shares and the reads they bring mostly stay.

During the ``weeks`` of activity followers send messages, click the menu, scan channel codes,
about 5% unsubscribe and some of those come back. The brand shop's orders for about a third of the
followers have heavy-tailed counts and log-normal amounts.
"""

from __future__ import annotations

import base64
import bisect
import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from connectors.wechat_sim import _content as content
from connectors.wechat_sim import activity
from connectors.wechat_sim.activity import DAY, Action, Order, ShareRead

__all__ = ["Action", "Order", "Population", "ShareRead", "generate_population"]

_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
ORDER_HEADER = ("order_id", "amount", "time", "currency", "openid", "account", "unionid", "phone")


@dataclass
class Population:
    """The generated world: per-follower columns (index = subscribe order) and event streams."""

    seed: int
    start: datetime
    weeks: int
    openids: list[str]
    unionids: list[str | None]
    phones: list[str | None]
    first_subscribe: np.ndarray  # unix seconds, int64, ascending
    unsubscribe: np.ndarray  # 0 when never
    resubscribe: np.ndarray  # 0 when never
    scene: list[str]
    qr_scene: list[int]
    qr_scene_str: list[str]
    referrer: np.ndarray  # follower index or -1
    community: np.ndarray
    language: list[str]
    tags: dict[int, str]
    tag_members: dict[int, set[int]]
    actions: list[Action]
    share_reads: list[ShareRead]
    orders: list[Order]
    index: dict[str, int] = field(default_factory=dict, repr=False)
    _action_times: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.index = {openid: i for i, openid in enumerate(self.openids)}
        self._action_times = [a.time for a in self.actions]

    @property
    def end(self) -> datetime:
        """The end of the activity period."""
        return self.start + timedelta(weeks=self.weeks)

    def __len__(self) -> int:
        return len(self.openids)

    def subscribed_mask(self, at: int) -> np.ndarray:
        """Boolean array: who follows the account at unix time ``at``."""
        first = self.first_subscribe <= at
        gone = (self.unsubscribe > 0) & (self.unsubscribe <= at)
        back = (self.resubscribe > 0) & (self.resubscribe <= at)
        return (first & ~gone) | back

    def subscribe_time(self, i: int, at: int) -> int:
        """The start of follower ``i``'s current (or latest) subscription at ``at``."""
        back = int(self.resubscribe[i])
        return back if 0 < back <= at else int(self.first_subscribe[i])

    def invitees(self) -> np.ndarray:
        """How many followers each follower brought in through a personal code."""
        refs = self.referrer[self.referrer >= 0]
        return np.bincount(refs, minlength=len(self))

    def actions_between(self, since: int | None = None, until: int | None = None) -> list[Action]:
        """Actions with ``since <= time < until`` (either bound optional), in time order."""
        times = self._action_times
        lo = 0 if since is None else bisect.bisect_left(times, since)
        hi = len(times) if until is None else bisect.bisect_left(times, until)
        return self.actions[lo:hi]

    def iter_orders(self, *, account: str = "demo", until: int | None = None) -> Iterator[tuple[str, ...]]:
        """Order rows (``ORDER_HEADER`` order) with ``time <= until``; times as ISO 8601 UTC."""
        for o in self.orders:
            if until is not None and o.time > until:
                break
            when = datetime.fromtimestamp(o.time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            yield (
                o.order_id,
                o.amount,
                when,
                "CNY",
                o.openid,
                account if o.openid else "",
                o.unionid,
                o.phone,
            )

    def write_orders_csv(self, path: str | Path, *, account: str = "demo", until: int | None = None) -> Path:
        """Write the shop's orders export (the purchases import format) and return its path."""
        path = Path(path)
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(ORDER_HEADER)
            writer.writerows(self.iter_orders(account=account, until=until))
        return path


def _ids(rng: np.random.Generator, n: int, prefix: str) -> list[str]:
    """``n`` distinct ids of WeChat's openid shape: 28 characters, ``prefix`` then base64url."""
    width = 28 - len(prefix)
    text = base64.urlsafe_b64encode(rng.bytes(n * 18)).decode()  # 18 bytes -> 24 characters each
    ids = [prefix + text[k : k + width] for k in range(0, n * 24, 24)]
    if len(set(ids)) != n:  # astronomically unlikely; keep the guarantee anyway
        return _ids(rng, n, prefix)
    return ids


def _prefix(rng: np.random.Generator, first: str) -> str:
    return first + "".join(_ALPHABET[rng.integers(0, 64, size=5)])


def generate_population(
    followers: int = 1000,
    *,
    seed: int = 7,
    start: datetime | None = None,
    weeks: int = 8,
    history_days: int = 720,
) -> Population:
    """Generate a reproducible population.

    Parameters
    ----------
    followers : int
        How many people ever follow the account.
    seed : int
        Same seed, same population (given the same numpy version).
    start : datetime
        Start of the activity period (aware); default 2026-09-01 UTC.
    weeks : int
        Length of the activity period.
    history_days : int
        About 60% of followers subscribed in the ``history_days`` before ``start``, the rest during
        the activity period.

    Examples
    --------
    >>> pop = generate_population(200, seed=1)
    >>> len(pop), len(pop.openids[0]), pop.openids[0][0]
    (200, 28, 'o')
    >>> generate_population(200, seed=1).openids == pop.openids
    True
    """
    if followers < 0:
        raise ValueError("followers must be >= 0")
    start = (start or datetime(2026, 9, 1, tzinfo=UTC)).astimezone(UTC)
    rng = np.random.default_rng(seed)
    n = followers
    t0 = int(start.timestamp())
    t_end = t0 + weeks * 7 * DAY

    # Subscribe times: 60% before the activity period, the rest during it; index = subscribe order.
    before = rng.random(n) < 0.6
    first = np.where(
        before,
        t0 - rng.integers(1, max(2, history_days * DAY), size=n),
        t0 + rng.integers(0, max(1, t_end - t0), size=n),
    )
    first.sort()
    first = first.astype(np.int64)

    openids = _ids(rng, n, _prefix(rng, "o"))
    union_prefix = _prefix(rng, "o")
    has_union = rng.random(n) < 0.6
    union_all = _ids(rng, n, union_prefix)
    unionids = [u if h else None for u, h in zip(union_all, has_union, strict=True)]
    phone_digits = rng.integers(0, 10**8, size=n)
    phone_prefix = rng.choice(np.array(content.PHONE_PREFIXES), size=n)
    has_phone = rng.random(n) < 0.45
    phones: list[str | None] = []
    seen_phones: set[str] = set()
    for p, d, h in zip(phone_prefix, phone_digits, has_phone, strict=True):
        phone = f"{p}{d:08d}"
        phones.append(phone if h and phone not in seen_phones else None)
        seen_phones.add(phone)

    # Acquisition: referral forest by preferential attachment among "inviters".
    n_comm = int(min(30, max(10, round(np.sqrt(max(n, 1)) / 6))))
    comm_weights = 1.0 / np.arange(1, n_comm + 1) ** 0.8
    comm_weights /= comm_weights.sum()
    community = rng.choice(n_comm, size=n, p=comm_weights).astype(np.int64)
    referrer = np.full(n, -1, dtype=np.int64)
    is_inviter = rng.random(n) < 0.25
    via_ref = rng.random(n) < 0.35
    inherit = rng.random(n) < 0.8
    urn: list[int] = []
    picks = rng.random(n)
    for i in range(n):
        if via_ref[i] and urn:
            r = urn[int(picks[i] * len(urn))]
            referrer[i] = r
            urn.append(r)
            if inherit[i]:
                community[i] = community[r]
        if is_inviter[i]:
            urn.append(i)

    scene_names = np.array([s for s, _ in content.SCENES])
    scene_p = np.array([w for _, w in content.SCENES])
    scenes = rng.choice(scene_names, size=n, p=scene_p / scene_p.sum())
    channel = rng.choice(len(content.CHANNELS), size=n, p=content.CHANNEL_WEIGHTS)
    scene: list[str] = []
    qr_scene: list[int] = []
    qr_scene_str: list[str] = []
    for i in range(n):
        if referrer[i] >= 0:
            scene.append("ADD_SCENE_QR_CODE")
            qr_scene.append(0)
            qr_scene_str.append("ref_" + openids[referrer[i]])
        elif scenes[i] == "ADD_SCENE_QR_CODE":
            code = content.CHANNELS[channel[i]]
            scene.append("ADD_SCENE_QR_CODE")
            qr_scene.append(code if isinstance(code, int) else 0)
            qr_scene_str.append(code if isinstance(code, str) else "")
        else:
            scene.append(str(scenes[i]))
            qr_scene.append(0)
            qr_scene_str.append("")
    language = list(
        rng.choice(np.array(["zh_CN", "en", "zh_TW", "zh_HK"]), size=n, p=[0.85, 0.08, 0.05, 0.02])
    )

    # Unsubscribes (~5%) during the activity period, and returns (~30% of those).
    active_from = np.maximum(first, t0)
    leaves = (rng.random(n) < 0.05) & (active_from < t_end - 2 * DAY)
    unsub = np.where(leaves, active_from + (rng.random(n) * (t_end - active_from)).astype(np.int64), 0)
    unsub = np.where(unsub >= t_end, 0, unsub).astype(np.int64)
    comes_back = (unsub > 0) & (rng.random(n) < 0.3)
    resub = np.where(comes_back, unsub + 1 + (rng.random(n) * (t_end - unsub)).astype(np.int64), 0)
    resub = np.where(resub >= t_end, 0, resub).astype(np.int64)

    action_list = activity.actions(rng, openids, first, unsub, resub, qr_scene, qr_scene_str, t0, t_end)
    read_list = activity.share_reads(rng, openids, first, unsub, community, t0, t_end, seed)
    order_list = activity.orders(rng, openids, unionids, phones, first, t0, t_end, seed)

    invited = np.bincount(referrer[referrer >= 0], minlength=n) if n else np.zeros(0, dtype=np.int64)
    spend = np.zeros(n)
    by_key = {k: i for i, k in enumerate(openids)}
    by_key.update({p: i for i, p in enumerate(phones) if p})
    by_key.update({u: i for i, u in enumerate(unionids) if u})
    for o in order_list:
        spend[by_key[o.openid or o.phone or o.unionid]] += float(o.amount)
    tags = dict(content.TAGS)
    tag_members: dict[int, set[int]] = {tag: set() for tag in tags}
    if n:
        tag_members[100] = {int(i) for i in np.argsort(-spend)[: max(1, n // 50)] if spend[i] > 0}
        tag_members[101] = {int(i) for i in np.nonzero(first >= t_end - 14 * DAY)[0]}
        tag_members[102] = {int(i) for i in np.argsort(-invited)[: max(1, n // 100)] if invited[i] > 0}
        tag_members[103] = {int(i) for i in np.nonzero(community == 0)[0]}
    return Population(
        seed=seed,
        start=start,
        weeks=weeks,
        openids=openids,
        unionids=unionids,
        phones=phones,
        first_subscribe=first,
        unsubscribe=unsub,
        resubscribe=resub,
        scene=scene,
        qr_scene=qr_scene,
        qr_scene_str=qr_scene_str,
        referrer=referrer,
        community=community,
        language=[str(x) for x in language],
        tags=tags,
        tag_members=tag_members,
        actions=action_list,
        share_reads=read_list,
        orders=order_list,
    )
