"""Inbound messages and events from a platform's callbacks, stored exactly once.

A platform pushes a follower's message or event to our bot and retries it when the answer is slow,
possibly to another server process. Each accepted :class:`InboundRecord` is written once, guarded by
the unique ``(account_id, dedup_key)`` of ``inbound_message``, in the same transaction as what it means
for the store:

- an ``interaction`` row (``text``, ``click``, ``scan``, ``subscribe``, ``unsubscribe`` ...) with its time,
  content and channel, for the scoring;
- ``subscribe`` opens a ``follow`` row (channel: the QR code's scene) and, through another follower's
  personal code ``ref_<openid>``, a ``referred_by`` relation (the convention of the follower sync);
- ``unsubscribe`` closes the open follow;
- ``follower_activity`` keeps the follower's last own action, for the customer-service window.

:func:`write_inbound` writes a batch in one transaction; a record whose key is already stored is not
written again and gets the stored reply back. :class:`scrm.group_commit.GroupCommit` collects records
from many concurrent requests for a millisecond or two and writes them together (one commit for all).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from scrm.identity import KeyTuple, insert_ignoring_conflicts, resolve
from scrm.inbound_rows import claim_and_record_pg, claim_inbound, insert_interactions, upsert_activity
from scrm.models import (
    Account,
    CustomerScore,
    CustomerTag,
    Follow,
    FollowerActivity,
    Identity,
    IdentityKind,
    InboundMessage,
    Interaction,
    Relation,
    ScoreRun,
    Tag,
    utcnow,
)
from scrm.store import Store

__all__ = [
    "REFERRAL_PREFIX",
    "FollowerContext",
    "InboundRecord",
    "Outcome",
    "follower_context",
    "is_following",
    "set_status",
    "write_inbound",
]

log = logging.getLogger(__name__)

#: the scene of a follower's personal referral QR code: ``ref_<referrer's openid>`` (as the follower sync)
REFERRAL_PREFIX = "ref_"

inbound_t = InboundMessage.__table__  # type: ignore[attr-defined]
interaction_t = Interaction.__table__  # type: ignore[attr-defined]
follow_t = Follow.__table__  # type: ignore[attr-defined]
relation_t = Relation.__table__  # type: ignore[attr-defined]
activity_t = FollowerActivity.__table__  # type: ignore[attr-defined]
identity_t = Identity.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class InboundRecord:
    """One message or event pushed by a platform, in plain terms.

    ``kind`` is ``text``, ``image``, ``voice``, ``video``, ``location``, ``link`` (messages) or
    ``subscribe``, ``unsubscribe``, ``scan``, ``click``, ``view``, ``other`` (events); ``scene`` is the
    channel QR code's scene of a subscribe or scan, ``key`` the menu key of a click (the URL of a view).
    """

    platform: str
    appid: str
    openid: str
    kind: str
    created: datetime
    msg_id: int = 0
    content: str = ""
    scene: str = ""
    key: str = ""
    to_user: str = ""  # the account's original id (WeChat ToUserName), the sender of replies

    @property
    def dedup_key(self) -> str:
        """``msg:<MsgId>`` for messages, ``event:<openid>:<CreateTime>`` for events (as WeChat advises)."""
        if self.msg_id:
            return f"msg:{self.msg_id}"
        return f"event:{self.openid}:{int(self.created.timestamp())}"

    @property
    def referrer(self) -> str | None:
        """The openid whose personal QR code brought this follower, if any."""
        if self.kind != "subscribe" or not self.scene.startswith(REFERRAL_PREFIX):
            return None
        ref = self.scene[len(REFERRAL_PREFIX) :]
        return ref if ref and ref != self.openid else None


@dataclass(frozen=True)
class Outcome:
    """What became of one record: ``duplicate`` when it was stored before; then ``reply``/``status`` are
    the stored ones."""

    customer_id: int
    duplicate: bool
    reply: str
    status: str


def _openid_key(record: InboundRecord, openid: str) -> KeyTuple:
    return (IdentityKind.OPENID.value, record.appid, openid)


def _account_ids(conn: Connection, appids: set[str]) -> dict[str, int]:
    t = Account.__table__  # type: ignore[attr-defined]
    query = sa.select(t.c.id).where(t.c.external_id == sa.bindparam("appid"))  # compiled once, cached
    found = {appid: conn.execute(query, {"appid": appid}).scalar() for appid in sorted(appids)}
    return {appid: id_ for appid, id_ in found.items() if id_ is not None}


def write_inbound(
    conn: Connection,
    items: Sequence[tuple[InboundRecord, str, str, str]],
    known_accounts: dict[str, int] | None = None,
) -> list[Outcome]:
    """Store each (record, rule name, reply, status) unless its key is stored already.

    ``conn`` is in a transaction; everything (identities, interactions, follows, referrals, activity)
    is written through it, with a fixed number of statements per group (plus one or two per
    subscribe or unsubscribe). The accounts must exist (``scrm init`` / ``sync_accounts``);
    ``known_accounts`` (appid -> account id) is a cache the caller keeps between groups.
    """
    cache = {} if known_accounts is None else known_accounts  # appid -> account id (ids never change)
    unknown = {r.appid for r, *_ in items} - set(cache)
    if unknown:
        cache.update(_account_ids(conn, unknown))
    accounts = cache
    missing = {r.appid for r, *_ in items} - set(accounts)
    if missing:
        raise LookupError(f"no account with appid {sorted(missing)} in the store: run `scrm init`")
    # Keys and claims go to the store in sorted order, so that writers meeting on the same keys
    # take their row locks in one order (the bot's own writers are also serialised: GroupCommit).
    referrers = [r.referrer for r, *_ in items]
    wanted = {_openid_key(r, r.openid) for r, *_ in items}
    wanted.update(_openid_key(r, ref) for (r, *_), ref in zip(items, referrers, strict=True) if ref)
    openid_keys = sorted(wanted)
    found = resolve(conn, [(k,) for k in openid_keys], source="bot:wechat").customer_ids
    customer_of = dict(zip(openid_keys, found, strict=True))
    ids = [customer_of[_openid_key(r, r.openid)] for r, *_ in items]
    referrer_of = [
        customer_of[_openid_key(r, ref)] if ref else None
        for (r, *_), ref in zip(items, referrers, strict=True)
    ]
    now = utcnow()

    # Claim each (account, key) once: a copy later in this group is a duplicate of the first.
    first: dict[tuple[int, str], int] = {}
    for k, (record, *_) in enumerate(items):
        first.setdefault((accounts[record.appid], record.dedup_key), k)
    rows = [
        (account_id, key, ids[k], items[k][0].kind, items[k][1], items[k][3], items[k][2], now)
        for (account_id, key), k in sorted(first.items())
    ]
    recorded = conn.dialect.name == "postgresql"  # interactions and last actions in the same statement
    if recorded:
        claimed = claim_and_record_pg(
            conn, [(*row, *_interaction(items[first[(row[0], row[1])]][0])) for row in rows]
        )
    else:
        claimed = claim_inbound(conn, rows)
    stored: dict[tuple[int, str], tuple[str, str]] = {}
    for account_id in {a for a, key in first if (a, key) not in claimed}:
        keys = [key for a, key in first if a == account_id and (a, key) not in claimed]
        for row in conn.execute(
            sa.select(inbound_t.c.dedup_key, inbound_t.c.reply, inbound_t.c.status).where(
                inbound_t.c.account_id == account_id, inbound_t.c.dedup_key.in_(keys)
            )
        ):
            stored[(account_id, row.dedup_key)] = (row.reply, row.status)
    outcomes: list[Outcome] = []
    mine: list[int] = []
    for k, (record, _rule, reply, status) in enumerate(items):
        where = (accounts[record.appid], record.dedup_key)
        if where in claimed and first[where] == k:
            mine.append(k)
            outcomes.append(Outcome(ids[k], False, reply, status))
        else:
            if where in claimed:  # a second copy within this group: the first one's reply
                old_reply, old_status = items[first[where]][2], items[first[where]][3]
            else:  # stored before (PostgreSQL waits for a concurrent claim to commit, then sees it)
                old_reply, old_status = stored.get(where, ("", "none"))
            outcomes.append(Outcome(ids[k], True, old_reply, old_status))
    if mine:
        _apply(
            conn,
            [(items[k][0], accounts[items[k][0].appid], ids[k], referrer_of[k]) for k in mine],
            recorded=recorded,
        )
    return outcomes


def _interaction(record: InboundRecord) -> tuple[str, str, datetime, str, str, bool]:
    """(platform, external_id, occurred_at, content, channel, counts as the follower's own action)."""
    channel = record.scene if record.kind in ("subscribe", "scan") else ""
    content = record.key if record.kind in ("click", "view") else record.content
    external_id = f"{record.appid}:{record.dedup_key}"
    return (
        record.platform,
        external_id,
        record.created,
        content,
        channel,
        record.kind not in ("view", "other"),
    )


def _apply(
    conn: Connection, claimed: list[tuple[InboundRecord, int, int, int | None]], *, recorded: bool = False
) -> None:
    """What the claimed records mean for the store: interactions, follows, referrals, last actions
    (``recorded``: interactions and last actions are written already)."""
    interactions: list[tuple[Any, ...]] = []
    last: dict[tuple[int, int], tuple[int, int, datetime, str]] = {}
    for record, account_id, cid, ref_id in claimed:
        platform, external_id, created, content, channel, acts = _interaction(record)
        interactions.append((platform, external_id, record.kind, cid, account_id, created, content, channel))
        if record.kind == "subscribe":
            _subscribe(conn, record, account_id, cid, ref_id, channel)
        elif record.kind == "unsubscribe":
            f = follow_t.c
            conn.execute(
                sa.update(follow_t)
                .where(f.account_id == account_id, f.customer_id == cid, f.unsubscribed_at.is_(None))
                .values(unsubscribed_at=record.created)
            )
        if acts:
            previous = last.get((account_id, cid))
            if previous is None or record.created >= previous[2]:
                last[(account_id, cid)] = (account_id, cid, record.created, record.kind)
    if not recorded:
        insert_interactions(conn, interactions)
        upsert_activity(conn, list(last.values()))


def _subscribe(
    conn: Connection, record: InboundRecord, account_id: int, cid: int, ref_id: int | None, channel: str
) -> None:
    f = follow_t.c
    conn.execute(
        sa.update(follow_t)
        .where(f.account_id == account_id, f.customer_id == cid, f.unsubscribed_at.is_(None))
        .where(f.subscribed_at < record.created)
        .values(unsubscribed_at=record.created)
    )
    conn.execute(
        insert_ignoring_conflicts(conn, follow_t),
        {
            "account_id": account_id,
            "customer_id": cid,
            "subscribed_at": record.created,
            "scene": "ADD_SCENE_QR_CODE" if channel else "",
            "channel": channel,
        },
    )
    if ref_id is not None and ref_id != cid:
        conn.execute(
            insert_ignoring_conflicts(conn, relation_t),
            {
                "kind": "referred_by",
                "source_id": cid,
                "target_id": ref_id,
                "weight": 1.0,
                "count": 1,
                "first_at": record.created,
                "last_at": record.created,
            },
        )


def set_status(store: Store, appid: str, dedup_key: str, status: str) -> None:
    """Record what became of a deferred reply (``sent`` or ``failed``)."""
    with store.connect() as conn:
        account_id = _account_ids(conn, {appid})[appid]
        conn.execute(
            sa.update(inbound_t)
            .where(inbound_t.c.account_id == account_id, inbound_t.c.dedup_key == dedup_key)
            .values(status=status)
        )


def is_following(store: Store, appid: str, openid: str) -> bool:
    """Whether ``openid`` has an open follow of the account (an unsubscribe stops all messaging)."""
    i, f = identity_t.c, follow_t.c
    with store.connect() as conn:
        account_id = _account_ids(conn, {appid}).get(appid)
        row = conn.execute(
            sa.select(f.unsubscribed_at)
            .join(identity_t, i.customer_id == f.customer_id)
            .where(i.kind == IdentityKind.OPENID.value, i.scope == appid, i.value == openid)
            .where(f.account_id == account_id)
            .order_by(f.subscribed_at.desc())
            .limit(1)
        ).first()
    return row is None or row.unsubscribed_at is None  # never seen subscribing: not known to have left


@dataclass(frozen=True)
class FollowerContext:
    """What templates may know of a follower: channel, tags, the latest scores when a snapshot exists."""

    openid: str
    customer_id: int | None = None
    channel: str = ""
    tags: tuple[str, ...] = ()
    scores: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "openid": self.openid,
            "customer_id": self.customer_id,
            "channel": self.channel,
            "tags": list(self.tags),
            "scores": dict(self.scores) if self.scores else None,
            "stage": (self.scores or {}).get("stage", ""),
        }


_SCORE_FIELDS = ("social_value", "influence", "stage", "rfm", "clv_minor", "p_alive", "community_id")


def follower_context(store: Store, appid: str, openid: str) -> FollowerContext:
    """The follower's stored context (empty for a follower never seen), a few indexed reads."""
    i = identity_t.c
    with store.connect() as conn:
        cid = conn.execute(
            sa.select(i.customer_id).where(
                i.kind == IdentityKind.OPENID.value, i.scope == appid, i.value == openid
            )
        ).scalar()
        if cid is None:
            return FollowerContext(openid)
        f = follow_t.c
        channel = conn.execute(
            sa.select(f.channel).where(f.customer_id == cid).order_by(f.subscribed_at.desc()).limit(1)
        ).scalar()
        tag_t, ct = Tag.__table__, CustomerTag.__table__  # type: ignore[attr-defined]
        tags = conn.execute(
            sa.select(tag_t.c.name)
            .join(ct, ct.c.tag_id == tag_t.c.id)
            .where(ct.c.customer_id == cid)
            .order_by(tag_t.c.name)
        ).scalars()
        tag_names = tuple(tags)
        run_t, score_t = ScoreRun.__table__, CustomerScore.__table__  # type: ignore[attr-defined]
        run = conn.execute(sa.select(sa.func.max(run_t.c.id)).where(run_t.c.status == "done")).scalar()
        scores = None
        if run is not None:
            row = conn.execute(
                sa.select(*(score_t.c[name] for name in _SCORE_FIELDS)).where(
                    score_t.c.run_id == run, score_t.c.customer_id == cid
                )
            ).first()
            scores = dict(row._mapping) if row is not None else None
    return FollowerContext(openid, cid, channel or "", tag_names, scores)
