"""Batch writes of a WeCom sync: contacts, customer groups with their members, contact events.

Every function takes a connection inside a transaction and writes one batch with a fixed number of
queries. Every write is idempotent (``ON CONFLICT DO NOTHING`` under the tables' unique keys,
changes computed against what is stored), so a batch written twice leaves the store as if written
once: that is what lets a killed sync resume.

- An external contact is a customer known by the key ``wecom_external`` (scoped to the corpid) and,
  when WeCom gives one, their unionid: the unionid merges them with the same person's Official
  Account follower. Each staff member who has them is a ``staff_contact`` row.
- A customer group is a ``customer_group`` row; each stay of a customer in it a ``group_membership``
  row (staff members in groups are not customers and are not stored as members). A customer who is
  no longer listed has left: their stay is closed at the sync time and a ``group_leave``
  interaction is recorded. A customer invited by another customer gives an ``invited_to_group``
  relation (invitee -> invitor); a staff inviter stays on the membership row.
- A contact event is an interaction (``staff_deleted_customer``, ``customer_deleted_staff``) and
  closes the staff member's ``staff_contact`` row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors.base import ContactEvent, ExternalContact, GroupInfo
from connectors.bulk_rows import insert_rows
from connectors.follower_writes import AccountRef, int_in
from scrm.identity import KeyTuple, Merge, in_values, insert_ignoring_conflicts, resolve
from scrm.key_cache import KeyCache
from scrm.models import CustomerGroup, GroupMembership, IdentityKind, StaffContact

__all__ = ["ContactsResult", "GroupsResult", "write_contact_events", "write_contacts", "write_groups"]

group_t = CustomerGroup.__table__  # type: ignore[attr-defined]
member_t = GroupMembership.__table__  # type: ignore[attr-defined]
staff_contact_t = StaffContact.__table__  # type: ignore[attr-defined]

_STAFF_CONTACT_COLUMNS = (
    ("account_id", "int"),
    ("customer_id", "int"),
    ("staff", "text"),
    ("added_at", "timestamptz"),
    ("add_way", "int"),
    ("state", "text"),
    ("removed_by", "text"),
)
_MEMBER_COLUMNS = (
    ("group_id", "int"),
    ("customer_id", "int"),
    ("joined_at", "timestamptz"),
    ("join_scene", "int"),
    ("invited_by_id", "int"),
    ("invited_by_staff", "text"),
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
_INTERACTION_COLUMNS = (
    ("platform", "text"),
    ("external_id", "text"),
    ("kind", "text"),
    ("customer_id", "int"),
    ("account_id", "int"),
    ("occurred_at", "timestamptz"),
    ("content", "text"),
    ("channel", "text"),
)
INVITED_TO_GROUP = "invited_to_group"
GROUP_LEAVE = "group_leave"


@dataclass
class ContactsResult:
    """What one batch of contacts changed."""

    staff_contacts: int = 0
    customers_created: int = 0
    merges: list[Merge] = field(default_factory=list)


@dataclass
class GroupsResult:
    """What one batch of groups changed."""

    groups_new: int = 0
    joined: int = 0
    left: int = 0
    invitations: int = 0
    customers_created: int = 0
    merges: list[Merge] = field(default_factory=list)


def _keys(scope: str, external_id: str, unionid: str | None) -> tuple[KeyTuple, ...]:
    own = (IdentityKind.WECOM_EXTERNAL.value, scope, external_id)
    return (own, (IdentityKind.UNIONID.value, "", unionid)) if unionid else (own,)


def write_contacts(
    conn: Connection, account: AccountRef, contacts: Sequence[ExternalContact], cache: KeyCache | None = None
) -> ContactsResult:
    """Store external contacts: their customer (identities, merges) and one row per staff member.

    ``cache`` (here and below) is the sync's :class:`~scrm.key_cache.KeyCache`, if any.
    """
    result = ContactsResult()
    if not contacts:
        return result
    resolution = resolve(
        conn,
        [_keys(account.scope, c.id, c.unionid) for c in contacts],
        source=account.source,
        names=[c.name for c in contacts],
        cache=cache,
    )
    result.customers_created, result.merges = resolution.customers_created, resolution.merges
    rows = [
        (account.id, cid, f.staff[:128], f.added_at, f.add_way, f.state[:128], "")
        for c, cid in zip(contacts, resolution.customer_ids, strict=True)
        for f in c.follows
    ]
    result.staff_contacts = insert_rows(conn, "staff_contact", _STAFF_CONTACT_COLUMNS, rows)
    return result


def _group_ids(
    conn: Connection, account: AccountRef, groups: Sequence[GroupInfo]
) -> tuple[dict[str, int], int]:
    """Insert new groups, rename changed ones; return chat id -> row id and how many were new."""
    g = group_t.c
    wanted = {grp.id: grp for grp in groups}
    stored = {
        row.external_id: row
        for row in conn.execute(
            sa.select(g.id, g.external_id, g.name, g.owner).where(
                g.account_id == account.id, in_values(conn, g.external_id, list(wanted))
            )
        )
    }
    new = [
        {
            "account_id": account.id,
            "platform": account.platform,
            "external_id": grp.id,
            "name": grp.name[:200],
            "owner": grp.owner[:128],
            "created_at": grp.created_at,
        }
        for chat, grp in wanted.items()
        if chat not in stored
    ]
    if new:
        conn.execute(insert_ignoring_conflicts(conn, group_t), new)
    for chat, row in stored.items():
        grp = wanted[chat]
        if (row.name, row.owner) != (grp.name[:200], grp.owner[:128]):
            conn.execute(
                sa.update(group_t).where(g.id == row.id).values(name=grp.name[:200], owner=grp.owner[:128])
            )
    ids = {
        row.external_id: row.id
        for row in conn.execute(
            sa.select(g.id, g.external_id).where(
                g.account_id == account.id, in_values(conn, g.external_id, list(wanted))
            )
        )
    }
    return ids, len(new)


def write_groups(
    conn: Connection,
    account: AccountRef,
    groups: Sequence[GroupInfo],
    staff: set[str],
    sync_time: datetime,
    cache: KeyCache | None = None,
) -> GroupsResult:
    """Store groups and their current customer members; close the stays of those who left.

    ``staff`` are the corp's staff userids (an inviter among them is a staff member, otherwise a
    customer); ``sync_time`` is when stays of members no longer listed are closed.
    """
    result = GroupsResult()
    if not groups:
        return result
    group_ids, result.groups_new = _group_ids(conn, account, groups)
    scope = account.scope
    members = [(grp, m) for grp in groups for m in grp.members if m.is_customer]
    invitors = sorted({m.invitor for _, m in members if m.invitor and m.invitor not in staff})
    key_sets = [_keys(scope, m.id, m.unionid) for _, m in members]
    key_sets += [_keys(scope, i, None) for i in invitors]
    resolution = resolve(conn, key_sets, source=account.source, cache=cache)
    result.customers_created, result.merges = resolution.customers_created, resolution.merges
    cids = resolution.customer_ids
    invitor_cid = dict(zip(invitors, cids[len(members) :], strict=True))

    # Current stays: (group row, customer) -> (joined, scene, invitor customer, invitor staff); earliest wins.
    current: dict[tuple[int, int], tuple[datetime, int, int | None, str]] = {}
    for (grp, m), cid in zip(members, cids[: len(members)], strict=True):
        key = (group_ids[grp.id], cid)
        stay = (
            m.joined_at,
            m.join_scene,
            invitor_cid.get(m.invitor),
            m.invitor if m.invitor in staff else "",
        )
        if key not in current or stay[0] < current[key][0]:
            current[key] = stay
    mc = member_t.c
    open_stays: dict[tuple[int, int], tuple[int, datetime]] = {}
    for row in conn.execute(
        sa.select(mc.id, mc.group_id, mc.customer_id, mc.joined_at).where(
            int_in(conn, mc.group_id, sorted(set(group_ids.values()))), mc.left_at.is_(None)
        )
    ):
        open_stays[(row.group_id, row.customer_id)] = (row.id, row.joined_at)

    inserts: list[tuple[Any, ...]] = []
    relations: list[tuple[Any, ...]] = []
    closes: list[dict[str, Any]] = []
    for key, (joined, scene, inv_cid, inv_staff) in current.items():
        stored = open_stays.get(key)
        if stored is not None and stored[1] == joined:
            continue
        if stored is not None:  # left and came back between two syncs: close the old stay
            closes.append({"mid": stored[0], "at": joined})
        inserts.append(
            (key[0], key[1], joined, scene, inv_cid if inv_cid != key[1] else None, inv_staff[:128])
        )
        if inv_cid is not None and inv_cid != key[1]:
            relations.append((INVITED_TO_GROUP, key[1], inv_cid, 1.0, 1, joined, joined))
    chat_of = {row_id: chat for chat, row_id in group_ids.items()}
    name_of = {grp.id: grp.name for grp in groups}
    leaves: list[tuple[Any, ...]] = []
    for key, (mid, joined) in open_stays.items():
        if key not in current:
            closes.append({"mid": mid, "at": sync_time})
            chat = chat_of[key[0]]
            external = f"{GROUP_LEAVE}:{chat}:{key[1]}:{int(joined.timestamp())}"
            leaves.append(
                (
                    account.platform,
                    external,
                    GROUP_LEAVE,
                    key[1],
                    account.id,
                    sync_time,
                    name_of[chat],
                    chat[:128],
                )
            )
    if closes:
        conn.execute(
            sa.update(member_t).where(mc.id == sa.bindparam("mid")).values(left_at=sa.bindparam("at")), closes
        )
    result.joined = insert_rows(conn, "group_membership", _MEMBER_COLUMNS, inserts)
    result.invitations = insert_rows(conn, "relation", _RELATION_COLUMNS, relations)
    result.left = insert_rows(conn, "interaction", _INTERACTION_COLUMNS, leaves)
    return result


def write_contact_events(
    conn: Connection, account: AccountRef, events: Sequence[ContactEvent], cache: KeyCache | None = None
) -> int:
    """Store contact deletions as interactions and close the staff member's contact row; return new ones."""
    if not events:
        return 0
    people = list(dict.fromkeys(e.contact for e in events))
    key_sets = [_keys(account.scope, p, None) for p in people]
    resolution = resolve(conn, key_sets, source=account.source, cache=cache)
    customer = dict(zip(people, resolution.customer_ids, strict=True))
    rows = [
        (
            account.platform,
            f"{account.scope}:{e.id}",
            e.kind,
            customer[e.contact],
            account.id,
            e.time,
            "",
            e.staff[:128],
        )
        for e in events
    ]
    added = insert_rows(conn, "interaction", _INTERACTION_COLUMNS, rows)
    sc = staff_contact_t.c
    conn.execute(
        sa.update(staff_contact_t)
        .where(
            sc.account_id == account.id,
            sc.customer_id == sa.bindparam("cid"),
            sc.staff == sa.bindparam("who"),
            sc.added_at <= sa.bindparam("seen"),
            sc.removed_at.is_(None),
        )
        .values(removed_at=sa.bindparam("at"), removed_by=sa.bindparam("by")),
        [
            {
                "cid": customer[e.contact],
                "who": e.staff,
                "at": e.time,
                "seen": e.time,
                "by": "staff" if e.kind == "staff_deleted_customer" else "customer",
            }
            for e in events
        ],
    )
    return added
