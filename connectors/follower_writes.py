"""Batch writes of a follower sync: profiles, tags and share reads into the store.

Every function takes a connection inside a transaction and writes one batch with a fixed number of
queries (no per-follower query loops). Every write is idempotent: rows are inserted with
``ON CONFLICT DO NOTHING`` under the tables' unique keys and changes are computed against what is
stored, so a batch written twice (a sync killed after writing it, before its checkpoint) leaves
the store as if it had been written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from connectors.base import FollowerProfile, ShareRead, TagInfo
from connectors.bulk_rows import insert_rows
from scrm.identity import KeyTuple, Merge, insert_ignoring_conflicts, resolve
from scrm.key_cache import KeyCache
from scrm.models import CustomerTag, Follow, IdentityKind, Tag, utcnow

__all__ = ["AccountRef", "BatchResult", "close_follows", "mirror_tags", "write_profiles", "write_share_reads"]

follow_t = Follow.__table__  # type: ignore[attr-defined]
tag_t = Tag.__table__  # type: ignore[attr-defined]
customer_tag_t = CustomerTag.__table__  # type: ignore[attr-defined]

#: the scene string of a follower's personal referral QR code: ``ref_<referrer's openid>``
REFERRAL_PREFIX = "ref_"
_CHUNK = 5_000
_FOLLOW_COLUMNS = (
    ("account_id", "int"),
    ("customer_id", "int"),
    ("subscribed_at", "timestamptz"),
    ("scene", "text"),
    ("channel", "text"),
)
_RELATION_COLUMNS = (
    ("kind", "text"),
    ("source_id", "int"),
    ("target_id", "int"),
    ("weight", "float8"),
    ("count", "int"),
    ("first_at", "timestamptz"),
    ("last_at", "timestamptz"),
)
_CUSTOMER_TAG_COLUMNS = (("customer_id", "int"), ("tag_id", "int"), ("created_at", "timestamptz"))
_INTERACTION_COLUMNS = (
    ("platform", "text"),
    ("external_id", "text"),
    ("kind", "text"),
    ("customer_id", "int"),
    ("target_customer_id", "int"),
    ("account_id", "int"),
    ("occurred_at", "timestamptz"),
    ("content", "text"),
    ("channel", "text"),
)


@dataclass(frozen=True)
class AccountRef:
    """The account a sync writes for: its row id, its scope (appid) and its platform."""

    id: int
    scope: str
    platform: str
    source: str  # identity.source for keys learnt here, e.g. "sync:wechat"


@dataclass
class BatchResult:
    """What one batch changed."""

    new: int = 0
    resubscribed: int = 0
    updated: int = 0
    referrals: int = 0
    tags_added: int = 0
    tags_removed: int = 0
    customers_created: int = 0
    merges: list[Merge] = field(default_factory=list)


def int_in(conn: Connection, column: sa.ColumnElement[int], values: Sequence[int]) -> sa.ColumnElement[bool]:
    """``column IN values`` with one bound array on PostgreSQL."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(sa.Integer())))
    return column.in_(values)


def mirror_tags(conn: Connection, account: AccountRef, tags: Sequence[TagInfo]) -> dict[int, int]:
    """Make the account's platform tags in ``tag`` equal ``tags``; return platform id -> tag row id.

    Tags deleted on the platform are deleted here (their ``customer_tag`` rows go with them);
    renamed ones are renamed. Tags made in scrm (empty ``external_id``) are left alone.
    """
    c = tag_t.c
    stored = {
        row.external_id: (row.id, row.name)
        for row in conn.execute(
            sa.select(c.id, c.name, c.external_id).where(c.account_id == account.id, c.external_id != "")
        )
    }
    wanted = {str(t.id): t.name for t in tags}
    gone = [row_id for ext, (row_id, _) in stored.items() if ext not in wanted]
    if gone:
        conn.execute(sa.delete(tag_t).where(c.id.in_(gone)))
    for ext, name in wanted.items():
        if ext in stored and stored[ext][1] != name:
            conn.execute(sa.update(tag_t).where(c.id == stored[ext][0]).values(name=name))
    new = [
        {"name": name, "account_id": account.id, "external_id": ext}
        for ext, name in wanted.items()
        if ext not in stored
    ]
    if new:
        conn.execute(insert_ignoring_conflicts(conn, tag_t), new)
    rows = conn.execute(sa.select(c.id, c.external_id).where(c.account_id == account.id, c.external_id != ""))
    return {int(row.external_id): row.id for row in rows}


def write_profiles(
    conn: Connection,
    account: AccountRef,
    profiles: Sequence[FollowerProfile],
    tag_ids: dict[int, int],
    cache: KeyCache | None = None,
) -> BatchResult:
    """Store subscribed followers: identities, follow periods, referrals and tags.

    A follower seen for the first time gets a follow row (``new``); one whose ``subscribe_time`` is
    later than their stored period's gets a new row, and their open period is closed at that time
    (``resubscribed``: they left and came back). ``tag_ids`` maps platform tag ids to tag rows;
    ``cache`` is the sync's :class:`~scrm.key_cache.KeyCache`, if any.
    """
    result = BatchResult()
    profiles = [p for p in profiles if p.subscribed and p.subscribe_time is not None]
    if not profiles:
        return result
    scope = account.scope
    key_sets: list[tuple[KeyTuple, ...]] = []
    for p in profiles:
        openid = (IdentityKind.OPENID.value, scope, p.openid)
        key_sets.append((openid, (IdentityKind.UNIONID.value, "", p.unionid)) if p.unionid else (openid,))
    referrers = [_referrer(p) for p in profiles]
    key_sets.extend(((IdentityKind.OPENID.value, scope, r),) for r in referrers if r)
    resolution = resolve(conn, key_sets, source=account.source, cache=cache)
    created = set(resolution.created_ids)  # customers made by this batch have no rows to read
    result.customers_created = resolution.customers_created
    result.merges = resolution.merges
    ids = resolution.customer_ids
    cids = ids[: len(profiles)]
    referrer_ids = iter(ids[len(profiles) :])

    # Follow periods.
    f = follow_t.c
    periods: dict[int, list[tuple[int, datetime, datetime | None]]] = {}
    for chunk in _chunks(sorted(set(cids) - created)):
        for row in conn.execute(
            sa.select(f.customer_id, f.id, f.subscribed_at, f.unsubscribed_at).where(
                f.account_id == account.id, int_in(conn, f.customer_id, chunk)
            )
        ):
            periods.setdefault(row.customer_id, []).append((row.id, row.subscribed_at, row.unsubscribed_at))
    inserts: list[tuple[Any, ...]] = []
    changed: set[int] = set()  # customers already following whose stored data changed
    closes: list[dict[str, Any]] = []
    reopen: list[int] = []
    for p, cid in zip(profiles, cids, strict=True):
        since = p.subscribe_time
        assert since is not None
        stored = periods.get(cid, [])
        same = [row for row in stored if row[1] == since]
        if same:
            if same[0][2] is not None:  # closed while they were missing from a list: they never left
                reopen.append(same[0][0])
                changed.add(cid)
            continue
        if stored and max(row[1] for row in stored) > since:
            continue  # an older subscribe time than one stored: nothing newer to record
        inserts.append((account.id, cid, since, p.scene[:64], p.qr_scene_str[:128]))
        periods[cid] = [*stored, (0, since, None)]
        if stored:
            result.resubscribed += 1
            closes.extend({"fid": row[0], "at": since} for row in stored if row[2] is None and row[0])
        else:
            result.new += 1
    if inserts:
        insert_rows(conn, "follow", _FOLLOW_COLUMNS, inserts)
    if closes:
        conn.execute(
            sa.update(follow_t).where(f.id == sa.bindparam("fid")).values(unsubscribed_at=sa.bindparam("at")),
            closes,
        )
    if reopen:
        conn.execute(sa.update(follow_t).where(f.id.in_(reopen)).values(unsubscribed_at=None))

    # Referrals: the follower (source) was referred by the owner of the QR code (target).
    relations: list[tuple[Any, ...]] = []
    for p, cid, ref in zip(profiles, cids, referrers, strict=True):
        if ref is None:
            continue
        target = next(referrer_ids)
        if target != cid:
            at = p.subscribe_time
            relations.append(("referred_by", cid, target, 1.0, 1, at, at))
    if relations:
        result.referrals = insert_rows(conn, "relation", _RELATION_COLUMNS, relations)

    changed |= _mirror_customer_tags(conn, profiles, cids, tag_ids, result, created)
    changed -= {row[1] for row in inserts}  # new periods are counted as new/resubscribed
    result.updated = len(changed)
    return result


def _referrer(profile: FollowerProfile) -> str | None:
    scene = profile.qr_scene_str
    if scene.startswith(REFERRAL_PREFIX) and len(scene) > len(REFERRAL_PREFIX):
        ref = scene[len(REFERRAL_PREFIX) :]
        return ref if ref != profile.openid else None
    return None


def _chunks(values: Sequence[int]) -> list[Sequence[int]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def _mirror_customer_tags(
    conn: Connection,
    profiles: Sequence[FollowerProfile],
    cids: Sequence[int],
    tag_ids: dict[int, int],
    result: BatchResult,
    created: set[int],
) -> set[int]:
    """customer_tag rows of the account's platform tags = the profiles' tag lists; return who changed."""
    if not tag_ids:
        return set()
    wanted: dict[int, set[int]] = {}
    for p, cid in zip(profiles, cids, strict=True):
        wanted.setdefault(cid, set()).update(tag_ids[t] for t in p.tag_ids if t in tag_ids)
    ct = customer_tag_t.c
    stored: dict[int, set[int]] = {}
    mirrored = list(tag_ids.values())
    for chunk in _chunks(sorted(wanted.keys() - created)):
        for cid, tid in conn.execute(
            sa.select(ct.customer_id, ct.tag_id).where(
                int_in(conn, ct.customer_id, chunk), int_in(conn, ct.tag_id, mirrored)
            )
        ):
            stored.setdefault(cid, set()).add(tid)
    add = [(cid, tid) for cid, tids in wanted.items() for tid in sorted(tids - stored.get(cid, set()))]
    remove = [(cid, tid) for cid, tids in stored.items() for tid in sorted(tids - wanted.get(cid, set()))]
    if add:
        now = utcnow()
        insert_rows(conn, "customer_tag", _CUSTOMER_TAG_COLUMNS, [(cid, tid, now) for cid, tid in add])
    if remove:
        conn.execute(
            sa.delete(customer_tag_t).where(
                ct.customer_id == sa.bindparam("cid"), ct.tag_id == sa.bindparam("tid")
            ),
            [{"cid": cid, "tid": tid} for cid, tid in remove],
        )
    result.tags_added += len(add)
    result.tags_removed += len(remove)
    return {cid for cid, _ in add} | {cid for cid, _ in remove}


def close_follows(
    conn: Connection, account: AccountRef, present: set[str], at: datetime, cache: KeyCache | None = None
) -> int:
    """Close the open follow periods of followers whose openid is not in ``present``; return how many.

    A period is closed when its customer has openids of the account and none of them is listed. With
    the sync's ``cache`` holding the account's openids completely, they come from it and only the
    open periods are read; otherwise they are read with the periods.
    """
    f = follow_t.c
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    openids = cache.group(conn, (IdentityKind.OPENID.value, account.scope)) if cache is not None else None
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:  # the driver's cursor: one row per follower, SQLAlchemy's row objects would cost more
        if openids is not None:
            cursor.execute(
                f"SELECT id, customer_id FROM follow WHERE account_id = {mark} AND unsubscribed_at IS NULL",
                (account.id,),
            )
            periods = cursor.fetchall()
        else:
            cursor.execute(
                "SELECT f.id, i.value FROM follow f JOIN identity i ON i.customer_id = f.customer_id "
                f"WHERE f.account_id = {mark} AND f.unsubscribed_at IS NULL "
                f"AND i.kind = {mark} AND i.scope = {mark}",
                (account.id, IdentityKind.OPENID.value, account.scope),
            )
            rows = cursor.fetchall()
    finally:
        cursor.close()
    if openids is not None:
        with_openid = set(openids.values())
        listed_customers = {openids[o] for o in present if o in openids}
        gone = sorted(fid for fid, cid in periods if cid in with_openid and cid not in listed_customers)
    else:
        listed: set[int] = set()  # periods with an openid in the list
        missing: set[int] = set()  # periods with an openid not in it
        for fid, openid in rows:
            (listed if openid in present else missing).add(fid)
        gone = sorted(missing - listed)  # none of their openids is listed
    for chunk in _chunks(gone):
        conn.execute(sa.update(follow_t).where(int_in(conn, f.id, chunk)).values(unsubscribed_at=at))
    return len(gone)


def write_share_reads(
    conn: Connection, account: AccountRef, reads: Sequence[ShareRead], cache: KeyCache | None = None
) -> int:
    """Store reads through share links as ``share_read`` interactions (sharer → reader); return new ones."""
    if not reads:
        return 0
    scope = account.scope
    people = list(dict.fromkeys(o for r in reads for o in (r.sharer, r.reader)))
    key_sets = [((IdentityKind.OPENID.value, scope, openid),) for openid in people]
    resolution = resolve(conn, key_sets, source=account.source, cache=cache)
    customer = dict(zip(people, resolution.customer_ids, strict=True))
    rows = [
        (
            account.platform,
            r.id,
            "share_read",
            customer[r.sharer],
            customer[r.reader],
            account.id,
            r.time,
            r.article,
            "",
        )
        for r in reads
    ]
    return insert_rows(conn, "interaction", _INTERACTION_COLUMNS, rows)
