"""A reproducible WeCom (企业微信) world: staff, external contacts, customer groups and their changes.

Everything follows from ``seed`` and is kept as numpy columns, so a corp with 10,000 groups and
500,000 memberships is generated in a second or two.

- **Staff** (``staff``): userids such as ``ZhangWei07``; about 90% have the customer-contact
  permission (the others answer 60011 when their contacts are asked for).
- **External contacts** (``contacts``): ``external_userid`` of WeCom's shape (``wm`` + 30
  characters), a name, and a unionid for most of them. ``unionids`` (e.g. the unionids of an
  Official Account simulator's followers) are given to the first contacts in a random order, so the
  same person is a follower there and a contact here and scrm merges them on the unionid.
- **Follows**: each contact was added by one staff member (a fifth by two, a few by three), at
  ``createtime``, by ``add_way`` (1 scanned a contact-way QR code, 2 searched a phone number,
  3 a shared card, 201 assigned by a colleague); a scanned code carries its ``state`` (the channel,
  ``store_sh_01``, ``kol_xiaohong``...). About 6% of follows end: the staff member deletes the
  customer (删人) or the customer deletes the staff member.
- **Customer groups**: owned by a staff member, created over the period, sizes heavy-tailed
  (log-normal, 2 to 500 members) and scaled to ``memberships`` in all. Members are the owner, maybe
  other staff, and external contacts chosen by popularity (some are in many groups). A member joined
  directly invited (scene 1: by an earlier member, staff or customer, so invitation chains form),
  by link (2) or by QR code (3). About 8% of customers leave their group later.

Times run from ``start`` over ``weeks`` (the clock's default "now" is the end) and about 5% of
everything happens up to ``future_days`` after it, so advancing the clock shows new contacts,
joins, leaves and deletions.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

__all__ = ["CHANNELS", "WeComPopulation", "generate_wecom_population"]

DAY = 86_400
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
I8 = npt.NDArray[np.int8]
BoolArray = npt.NDArray[np.bool_]

#: contact-way QR code ``state`` values (channels), most used first
CHANNELS = ("store_sh_01", "poster_mall_sh", "kol_xiaohong", "store_bj_01", "live_0618", "wecom_welcome")
_SURNAMES = ("Zhang", "Wang", "Li", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu", "Xu", "Sun")
_GIVEN = ("Wei", "Fang", "Na", "Min", "Jing", "Lei", "Qiang", "Yan", "Jun", "Tao", "Hui", "Ping")
_TOPICS = ("会员", "新品", "福利", "宝妈", "门店", "达人", "团购", "售后")
_ADD_WAYS = np.array([1, 2, 3, 201], dtype=np.int16)


@dataclass
class WeComPopulation:
    """The generated corp. Follows are sorted by (staff, createtime); members by (group, join_time).

    ``*_range`` arrays are CSR offsets: the follows of staff ``s`` are rows
    ``staff_range[s]:staff_range[s + 1]``, the members of group ``g`` ``group_range[g]:...``.
    Times are unix seconds; 0 in ``f_removed`` / ``m_leave`` means never.
    """

    seed: int
    corpid: str
    start: datetime
    weeks: int
    future_days: int
    staff: list[str]
    staff_names: list[str]
    staff_enabled: BoolArray
    contacts: list[str]
    contact_names: list[str]
    contact_unionids: list[str | None]
    f_staff: I32
    f_contact: I32
    f_time: I64
    f_add_way: npt.NDArray[np.int16]
    f_state: I8  # index into CHANNELS, -1 none
    f_removed: I64
    f_removed_by: I8  # 0 not removed, 1 staff deleted the customer, 2 the customer deleted the staff
    staff_range: I64
    groups: list[str]
    group_names: list[str]
    g_owner: I32
    g_time: I64  # ascending
    g_status: I8
    m_group: I32
    m_kind: I8  # 1 staff, 2 external contact
    m_who: I32  # staff or contact index
    m_join: I64
    m_scene: I8
    m_invitor_kind: I8  # 0 none, 1 staff, 2 external contact
    m_invitor: I32
    m_leave: I64
    group_range: I64

    @property
    def end(self) -> datetime:
        """The end of the generated period: the simulator's clock starts here."""
        return self.start + timedelta(weeks=self.weeks)

    @property
    def memberships(self) -> int:
        return int(self.m_group.shape[0])

    def staff_index(self, userid: str) -> int | None:
        index = self.__dict__.get("_staff_index")
        if index is None:
            index = self.__dict__["_staff_index"] = {u: i for i, u in enumerate(self.staff)}
        return index.get(userid)

    def contact_index(self, external_userid: str) -> int | None:
        index = self.__dict__.get("_contact_index")
        if index is None:
            index = self.__dict__["_contact_index"] = {u: i for i, u in enumerate(self.contacts)}
        return index.get(external_userid)

    def group_index(self, chat_id: str) -> int | None:
        index = self.__dict__.get("_group_index")
        if index is None:
            index = self.__dict__["_group_index"] = {c: i for i, c in enumerate(self.groups)}
        return index.get(chat_id)


def _ids(rng: np.random.Generator, n: int, prefix: str, width: int) -> list[str]:
    """``n`` distinct ids: ``prefix`` then ``width`` base64url characters."""
    size = width - width % 4 + 4
    text = base64.urlsafe_b64encode(rng.bytes(n * size * 3 // 4)).decode()
    ids = [prefix + text[k : k + width] for k in range(0, n * size, size)]
    return ids if len(set(ids)) == n else _ids(rng, n, prefix, width)


def _popular(rng: np.random.Generator, n: int, size: int, exponent: float) -> I64:
    """``size`` draws of 0..n-1, index k with weight ``1 / (k + 10) ** exponent`` (a few very popular)."""
    weights = 1.0 / (np.arange(n) + 10.0) ** exponent
    cdf = np.cumsum(weights)
    picks = np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right")
    order: I64 = rng.permutation(n).astype(np.int64)  # popularity independent of the index
    result: I64 = order[np.minimum(picks, n - 1)]
    return result


def _times(rng: np.random.Generator, size: int, t0: int, t_end: int, t_future: int) -> I64:
    """95% uniform over [t0, t_end), 5% over [t_end, t_future)."""
    later = rng.random(size) < 0.05
    return np.where(
        later, rng.integers(t_end, max(t_end + 1, t_future), size=size), rng.integers(t0, t_end, size=size)
    ).astype(np.int64)


def generate_wecom_population(
    contacts: int = 1000,
    *,
    groups: int | None = None,
    memberships: int | None = None,
    staff: int | None = None,
    unionids: list[str] | None = None,
    seed: int = 7,
    start: datetime | None = None,
    weeks: int = 8,
    future_days: int = 30,
    corpid: str | None = None,
) -> WeComPopulation:
    """Generate a reproducible WeCom corp.

    Parameters
    ----------
    contacts : int
        External contacts (customers of the staff).
    groups, memberships : int, optional
        Customer groups and their members in all (default: one group per 20 contacts, 30 members
        each on average).
    staff : int, optional
        Staff members (default: one per 200 contacts, at least 5).
    unionids : list of str, optional
        Unionids to give to the first contacts (e.g. an Official Account simulator's followers'):
        ``contact_unionids[k] = unionids[perm[k]]`` for a seeded permutation; the other contacts get
        their own unionid (70%) or none.
    seed : int
        Same seed, same corp (given the same numpy version).
    start, weeks, future_days
        The generated period: ``start`` (default 2026-09-01 UTC, as the Official Account simulator)
        plus ``weeks``, and ``future_days`` after it for what the clock reveals when advanced.
    corpid : str, optional
        Default: ``ww`` and 16 characters from the seed.

    Examples
    --------
    >>> pop = generate_wecom_population(300, groups=20, memberships=400, seed=1)
    >>> len(pop.contacts), len(pop.groups), pop.contacts[0][:2], len(pop.contacts[0])
    (300, 20, 'wm', 32)
    >>> generate_wecom_population(300, groups=20, memberships=400, seed=1).contacts == pop.contacts
    True
    """
    if contacts < 1:
        raise ValueError("contacts must be >= 1")
    rng = np.random.default_rng(seed)
    start = (start or datetime(2026, 9, 1, tzinfo=UTC)).astimezone(UTC)
    t0 = int(start.timestamp())
    t_end = t0 + weeks * 7 * DAY
    t_future = t_end + future_days * DAY
    n = contacts
    n_groups = max(1, n // 20) if groups is None else groups
    n_members = max(2 * n_groups, n_groups * 30 if memberships is None else memberships)
    n_staff = max(5, n // 200) if staff is None else max(1, staff)
    corpid = corpid or "ww" + _ids(rng, 1, "", 16)[0].replace("-", "a").replace("_", "b").lower()

    # Staff.
    staff_ids = [f"{_SURNAMES[i % 12]}{_GIVEN[(i // 12) % 12]}{i:02d}" for i in range(n_staff)]
    staff_names = [f"{_SURNAMES[i % 12]} {_GIVEN[(i // 12) % 12]}" for i in range(n_staff)]
    enabled = rng.random(n_staff) < 0.9
    enabled[0] = True
    enabled_idx = np.flatnonzero(enabled)

    # Contacts and unionids.
    contact_ids = _ids(rng, n, "wm", 30)
    names = [f"{_SURNAMES[i]}{_GIVEN[j]}" for i, j in zip(*rng.integers(0, 12, size=(2, n)), strict=True)]
    own = _ids(rng, n, "o", 27)
    has_own = rng.random(n) < 0.7
    union: list[str | None] = [u if h else None for u, h in zip(own, has_own, strict=True)]
    if unionids:
        shared = [unionids[k] for k in rng.permutation(len(unionids))[:n]]
        union[: len(shared)] = shared

    # Follows: 1, 2 or 3 staff per contact; staff chosen by popularity.
    per = 1 + (rng.random(n) < 0.2) + (rng.random(n) < 0.04)
    f_contact = np.repeat(np.arange(n, dtype=np.int64), per)
    k = f_contact.shape[0]
    f_staff = _popular(rng, n_staff, k, 0.7)
    f_time = _times(rng, k, t0 - 180 * DAY, t_end, t_future)
    f_add_way = _ADD_WAYS[rng.choice(4, size=k, p=[0.6, 0.2, 0.15, 0.05])]
    channel_p = 1.0 / np.arange(1, len(CHANNELS) + 1)
    f_state = np.where(
        f_add_way == 1, rng.choice(len(CHANNELS), size=k, p=channel_p / channel_p.sum()), -1
    ).astype(np.int8)
    removed = rng.random(k) < 0.06
    f_removed = np.where(removed, f_time + rng.exponential(60 * DAY, size=k).astype(np.int64) + 1, 0)
    f_removed = np.where(f_removed > t_future, 0, f_removed).astype(np.int64)
    f_removed_by = np.where(f_removed > 0, np.where(rng.random(k) < 0.4, 1, 2), 0).astype(np.int8)
    # one follow per (staff, contact): drop repeats of a pair
    _, first = np.unique(f_staff * n + f_contact, return_index=True)
    keep = np.sort(first)
    order = keep[np.lexsort((f_time[keep], f_staff[keep]))]
    f_staff, f_contact, f_time = f_staff[order], f_contact[order], f_time[order]
    f_add_way, f_state, f_removed, f_removed_by = (
        f_add_way[order],
        f_state[order],
        f_removed[order],
        f_removed_by[order],
    )
    staff_range = np.searchsorted(f_staff, np.arange(n_staff + 1)).astype(np.int64)

    # Groups: owners among enabled staff, heavy-tailed sizes scaled to n_members.
    g_owner = enabled_idx[_popular(rng, enabled_idx.shape[0], n_groups, 0.7)]
    g_time = np.sort(_times(rng, n_groups, t0 - 90 * DAY, t_end - DAY, t_future))
    g_status = np.where(rng.random(n_groups) < 0.02, 1, 0).astype(np.int8)
    raw = rng.lognormal(0.0, 1.0, size=n_groups)
    sizes = np.clip(np.round(raw * n_members / raw.sum()), 2, 500).astype(np.int64)
    extra_staff = (rng.random(n_groups) < 0.3).astype(np.int64)  # a second staff member
    externals = np.maximum(sizes - 1 - extra_staff, 1)
    ext_group = np.repeat(np.arange(n_groups, dtype=np.int64), externals)
    ext_who = _popular(rng, n, ext_group.shape[0], 0.6)
    _, first = np.unique(ext_group * n + ext_who, return_index=True)  # one stay per member and group
    ext_group, ext_who = ext_group[np.sort(first)], ext_who[np.sort(first)]
    m_ext = ext_group.shape[0]
    second = np.flatnonzero(extra_staff)
    m_group = np.concatenate([np.arange(n_groups), second, ext_group])
    m_kind = np.concatenate([np.ones(n_groups + second.shape[0], np.int8), np.full(m_ext, 2, np.int8)])
    m_who = np.concatenate([g_owner, rng.choice(enabled_idx, size=second.shape[0]), ext_who])
    m_join = np.concatenate(
        [
            g_time[:n_groups],
            g_time[second] + rng.integers(60, DAY, size=second.shape[0]),
            g_time[ext_group] + 60 + rng.exponential(20 * DAY, size=m_ext).astype(np.int64),
        ]
    )
    order = np.lexsort((np.arange(m_join.shape[0]), m_join, m_group))
    m_group, m_kind, m_who, m_join = m_group[order], m_kind[order], m_who[order], m_join[order]
    group_range = np.searchsorted(m_group, np.arange(n_groups + 1)).astype(np.int64)
    total = int(m_group.shape[0])
    rank = np.arange(total) - group_range[m_group]
    m_scene = rng.choice(np.array([1, 2, 3], dtype=np.int8), size=total, p=[0.5, 0.2, 0.3])
    m_scene[rank == 0] = 1
    # Invited directly (scene 1): by an earlier member of the group (staff or customer): chains form.
    earlier = group_range[m_group] + np.floor(rng.random(total) * rank).astype(np.int64)
    invited = (m_scene == 1) & (rank > 0)
    m_invitor_kind = np.where(invited, m_kind[earlier], 0).astype(np.int8)
    m_invitor = np.where(invited, m_who[earlier], -1).astype(np.int32)
    leaves = (m_kind == 2) & (rng.random(total) < 0.08)
    stay: I64 = rng.exponential(90 * DAY, size=total).astype(np.int64)
    m_leave = np.where(leaves, m_join + stay + 1, 0)
    m_leave = np.where(m_leave > t_future, 0, m_leave).astype(np.int64)

    return WeComPopulation(
        seed=seed,
        corpid=corpid,
        start=start,
        weeks=weeks,
        future_days=future_days,
        staff=staff_ids,
        staff_names=staff_names,
        staff_enabled=enabled,
        contacts=contact_ids,
        contact_names=names,
        contact_unionids=union,
        f_staff=f_staff.astype(np.int32),
        f_contact=f_contact.astype(np.int32),
        f_time=f_time,
        f_add_way=f_add_way,
        f_state=f_state,
        f_removed=f_removed,
        f_removed_by=f_removed_by,
        staff_range=staff_range,
        groups=_ids(rng, n_groups, "wr", 30),
        group_names=[f"{_TOPICS[i % 8]}{i + 1}群" for i in range(n_groups)],
        g_owner=g_owner.astype(np.int32),
        g_time=g_time,
        g_status=g_status,
        m_group=m_group.astype(np.int32),
        m_kind=m_kind,
        m_who=m_who.astype(np.int32),
        m_join=m_join.astype(np.int64),
        m_scene=m_scene,
        m_invitor_kind=m_invitor_kind,
        m_invitor=m_invitor,
        m_leave=m_leave,
        group_range=group_range,
    )
