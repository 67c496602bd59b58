"""Identity resolution: map the keys a record carries to one customer, merging when keys meet.

A record (an order row, a follower profile) carries one or more keys: an openid of one of our
accounts, a unionid, a phone number, an email. :func:`resolve` finds the customer each record belongs
to, creating customers for keys never seen and attaching new keys to the customer they arrive with.
When one record carries keys of two different customers, they are one person: the younger customer is
merged into the older one, every row is re-pointed, and a :class:`~scrm.models.CustomerMerge` keeps the
key, the reason and the evidence (:mod:`scrm.merges` records the rows it moved, so it can be undone).
Two customers whose merge a person undid are never merged again automatically: a record carrying keys
of both goes to the older one and leaves the other's keys where they are.
All of it works on batches, with a fixed number of queries per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from scrm.key_cache import KeyCache
from scrm.merges import merge_customers
from scrm.models import Account, Customer, CustomerMerge, Identity, IdentityKind, utcnow
from scrm.sqlite_rows import insert_many

__all__ = [
    "Key",
    "Merge",
    "Resolution",
    "in_values",
    "insert_ignoring_conflicts",
    "merge_customers",
    "resolve",
]

_CHUNK = 5_000  # bound parameters per IN (...) query; SQLite allows 32,766

#: the platform an identity key belongs to (global keys such as phone and email: none)
_PLATFORMS: dict[str, str] = {
    IdentityKind.OPENID: "wechat",
    IdentityKind.UNIONID: "wechat",
    IdentityKind.WECOM_EXTERNAL: "wecom",
    IdentityKind.MASTODON: "mastodon",
}

identity_t = Identity.__table__  # type: ignore[attr-defined]
customer_t = Customer.__table__  # type: ignore[attr-defined]


KeyTuple = tuple[str, str, str]  # (kind, scope, value): a Key or a plain tuple, equal and same hash


class Key(NamedTuple):
    """An identity key: ``scope`` is the account's appid for openids and '' for global keys."""

    kind: str
    scope: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind} {self.value}" + (f" (account {self.scope})" if self.scope else "")


@dataclass(frozen=True)
class Merge:
    kept_id: int
    merged_id: int
    key: Key
    reason: str


@dataclass
class Resolution:
    """The customer id of each key set, and what had to be created or merged to get there."""

    customer_ids: list[int]
    customers_created: int = 0
    identities_added: int = 0
    merges: list[Merge] = field(default_factory=list)
    created_ids: list[int] = field(default_factory=list)  # customers created here: no rows anywhere yet


def insert_ignoring_conflicts(conn: Connection, table: sa.Table) -> sa.Insert:
    """An INSERT that skips rows violating a unique constraint, on SQLite and PostgreSQL."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"database {conn.dialect.name} is not supported")


def in_values(
    conn: Connection, column: sa.ColumnElement[str], values: Sequence[str]
) -> sa.ColumnElement[bool]:
    """``column IN values``: one bound array on PostgreSQL (``= ANY(:array)``), a list elsewhere.

    Thousands of separate parameters cost more to render and send than the query itself.
    """
    if conn.dialect.name == "postgresql":
        array = sa.bindparam(None, list(values), type_=postgresql.ARRAY(sa.String()))
        return column == sa.any_(array)
    return column.in_(values)


def _lookup(conn: Connection, keys: Iterable[KeyTuple]) -> dict[KeyTuple, int]:
    """Customer id of each known key, a few queries per (kind, scope) group.

    It runs for every key of every batch, so it uses bound parameters on the driver's cursor:
    SQLAlchemy's row objects would cost more than the query.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for key in keys:
        groups.setdefault((key[0], key[1]), []).append(key[2])
    found: dict[KeyTuple, int] = {}
    postgres = conn.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    select = f"SELECT value, customer_id FROM identity WHERE kind = {mark} AND scope = {mark}"
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for (kind, scope), values in groups.items():
            for start in range(0, len(values), _CHUNK):
                chunk = values[start : start + _CHUNK]
                params: tuple[Any, ...]
                if postgres:
                    # the array in binary: its text format quotes each value through a regex in Python
                    sql, params = f"{select} AND value = ANY(%b)", (kind, scope, chunk)
                else:
                    sql = f"{select} AND value IN ({', '.join('?' * len(chunk))})"
                    params = (kind, scope, *chunk)
                cursor.execute(sql, params)
                found.update(((kind, scope, value), cid) for value, cid in cursor.fetchall())
    finally:
        cursor.close()
    return found


def _account_ids(conn: Connection, scopes: set[str]) -> dict[str, int]:
    if not scopes:
        return {}
    t = Account.__table__  # type: ignore[attr-defined]
    rows = conn.execute(sa.select(t.c.external_id, t.c.id).where(t.c.external_id.in_(scopes)))
    return {external_id: id_ for external_id, id_ in rows}


def _create_customers(conn: Connection, names: list[str]) -> list[int]:
    """Insert customers; return their ids in order."""
    now = utcnow()
    if conn.dialect.name == "sqlite":
        # Rows in order, many per statement; inside the write transaction SQLite hands out
        # consecutive rowids (max + 1 each, and no other writer can interleave), so the ids follow
        # from the last one. (SQLAlchemy's ordered RETURNING would run one INSERT per row on SQLite.)
        stamp = now.replace(tzinfo=None).isoformat(" ", "microseconds")
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            insert_many(
                cursor, "INSERT INTO customer (display_name, created_at)", [(n, stamp) for n in names]
            )
            last = cursor.execute("SELECT last_insert_rowid()").fetchone()[0]
        finally:
            cursor.close()
        return list(range(last - len(names) + 1, last + 1))
    if conn.dialect.name == "postgresql":
        # Reserve the ids from the sequence in one query, then COPY the rows with them.
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence('customer', 'id')) FROM generate_series(1, %s)",
                (len(names),),
            )
            ids = [row[0] for row in cursor.fetchall()]
            with cursor.copy("COPY customer (id, display_name, created_at) FROM STDIN") as copy:
                for id_, name in zip(ids, names, strict=True):
                    copy.write_row((id_, name, now))
        finally:
            cursor.close()
        return ids
    rows = [{"display_name": name, "created_at": now} for name in names]
    returning = sa.insert(customer_t).returning(customer_t.c.id, sort_by_parameter_order=True)
    return list(conn.execute(returning, rows).scalars())


_IDENTITY_COLUMNS = "customer_id, kind, scope, value, platform, account_id, source, created_at"


def _insert_identities(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert identity rows (the columns above, less created_at) in one statement per batch."""
    now = utcnow()
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "postgresql":
            # COPY: executemany would run one statement per row.
            with cursor.copy(f"COPY identity ({_IDENTITY_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row((*row, now))
        else:
            stamp = now.replace(tzinfo=None).isoformat(" ", "microseconds")
            insert_many(
                cursor, f"INSERT INTO identity ({_IDENTITY_COLUMNS})", [(*row, stamp) for row in rows]
            )
    finally:
        cursor.close()


def _undone_pairs(conn: Connection) -> set[frozenset[int]]:
    """Pairs of customers whose merge a person undid (``scrm unmerge``): never merged again automatically."""
    m = CustomerMerge.__table__.c  # type: ignore[attr-defined]
    rows = conn.execute(sa.select(m.kept_id, m.merged_id).where(m.undone_at.is_not(None)))
    return {frozenset(pair) for pair in rows}


def _all_known(key_sets: Sequence[Sequence[KeyTuple]], known: dict[KeyTuple, int]) -> list[int] | None:
    """The customer of each key set when all its keys are stored with one customer; else None."""
    ids: list[int] = []
    for keys in key_sets:
        if not keys:
            return None
        cid = known[keys[0]]
        for key in keys[1:]:
            if known[key] != cid:
                return None
        ids.append(cid)
    return ids


def resolve(
    conn: Connection,
    key_sets: Sequence[Sequence[KeyTuple]],
    *,
    source: str,
    names: Sequence[str] | None = None,
    cache: KeyCache | None = None,
) -> Resolution:
    """Find or create the customer of each key set.

    Parameters
    ----------
    conn
        A connection inside a transaction; everything is written through it.
    key_sets
        Per record, the keys it carries (at least one each).
    source
        Where the keys were learnt (``"import:shop"``), kept on each new identity.
    names
        Optional display name per record, used for customers created here.
    cache
        Keys known from earlier batches of a bulk load (:mod:`scrm.key_cache`): only the others are
        looked up, and this batch's keys are added to it.
    """
    wanted = {k for keys in key_sets for k in keys}
    known = _lookup(conn, wanted) if cache is None else cache.known(conn, wanted, _lookup)
    if len(known) == len(wanted):  # a re-read: every key stored; done if no set spans two customers
        quick = _all_known(key_sets, known)
        if quick is not None:
            return Resolution(customer_ids=quick)
    owner: dict[KeyTuple, int] = dict(known)  # key -> customer id; ids < 0 are customers still to create
    members: dict[int, set[KeyTuple]] = {}
    for key, cid in known.items():
        members.setdefault(cid, set()).add(key)
    next_new = -1
    new_names: dict[int, str] = {}
    merges: list[tuple[int, int, Key, Key]] = []  # kept, merged, the merged one's key, the kept one's
    record_owner: list[int] = []
    forward: dict[int, int] = {}  # customer merged away in this batch -> the one it went into
    undone: set[frozenset[int]] | None = None  # pairs whose merge was undone, read when first needed

    def find(cid: int) -> int:
        while cid in forward:
            cid = forward[cid]
        return cid

    def absorb(kept: int, gone: int) -> None:
        forward[gone] = kept
        for k in members.pop(gone, set()):
            owner[k] = kept
            members.setdefault(kept, set()).add(k)
        if kept < 0 and gone in new_names and not new_names.get(kept):
            new_names[kept] = new_names[gone]
        new_names.pop(gone, None)

    # Records of one buyer repeat the same keys: resolve each distinct key set once.
    distinct: dict[tuple[KeyTuple, ...], int] = {}
    record_set: list[int] = []
    for keys in key_sets:
        keys = keys if type(keys) is tuple else tuple(keys)
        index = distinct.get(keys)
        if index is None:
            index = distinct[keys] = len(distinct)
        record_set.append(index)
    set_names = [""] * len(distinct)
    if names:
        for i in reversed(range(len(key_sets))):
            if names[i]:
                set_names[record_set[i]] = names[i]
    for i, keys in enumerate(distinct):
        if not keys:
            raise ValueError(f"record {record_set.index(i)} carries no identity key")
        if len(keys) == 1:  # the common case, without the merge machinery
            only = keys[0]
            found = owner.get(only)
            if found is None:
                found = next_new
                next_new -= 1
                new_names[found] = set_names[i]
                owner[only] = found
                members[found] = {only}
            record_owner.append(found)
            continue
        owners = sorted({owner[k] for k in keys if k in owner}, key=lambda c: (c < 0, abs(c)))
        apart: set[int] = set()  # customers a person unmerged from cid: they stay apart
        if not owners:
            cid = next_new
            next_new -= 1
            new_names[cid] = set_names[i]
        else:
            cid = owners[0]
            kept_key = next(k for k in keys if owner.get(k) == cid)
            for other in owners[1:]:
                if other > 0:  # two stored customers meet: a real merge
                    if undone is None:
                        undone = _undone_pairs(conn)
                    if frozenset((cid, other)) in undone:
                        apart.add(other)
                        continue
                    shared = next(k for k in keys if owner.get(k) == other)
                    merges.append((cid, other, Key(*shared), Key(*kept_key)))
                absorb(cid, other)
        for k in keys:
            if owner.get(k) != cid and owner.get(k) not in apart:
                owner[k] = cid
                members.setdefault(cid, set()).add(k)
        record_owner.append(cid)

    # Create the new customers, then map placeholders to real ids.
    placeholders = [c for c in members if c < 0]
    real: dict[int, int] = {}
    if placeholders:
        real = dict(
            zip(
                placeholders,
                _create_customers(conn, [new_names.get(c, "") for c in placeholders]),
                strict=True,
            )
        )

    def final(cid: int) -> int:
        return real.get(cid, cid)

    result = Resolution(customer_ids=[], customers_created=len(real), created_ids=list(real.values()))
    for kept, merged, key, kept_key in merges:
        kept = final(kept)
        reason = f"both customers carry {key}"
        evidence = {
            "seen_in": source,
            "kept_key": {"kind": kept_key[0], "scope": kept_key[1], "value": kept_key[2]},
        }
        merge_customers(conn, kept, merged, key=key, reason=reason, evidence=evidence)
        result.merges.append(Merge(kept, merged, key, reason))

    new_keys = [
        (k, final(c))
        for k, c in owner.items()
        if k not in known  # keys re-pointed by a merge were moved by merge_customers
    ]
    if new_keys:
        accounts = _account_ids(conn, {k[1] for k, _ in new_keys if k[1]})
        rows = [
            (
                cid,
                k[0],
                k[1],
                k[2],
                _PLATFORMS.get(k[0], ""),
                accounts.get(k[1]),
                source,
            )
            for k, cid in new_keys
        ]
        _insert_identities(conn, rows)
        result.identities_added = len(rows)

    per_set = [final(find(c)) for c in record_owner]
    if cache is not None:
        if forward:
            cache.learn({k: final(find(c)) for k, c in owner.items()}, merged=bool(merges))
        else:  # nothing absorbed: placeholders map straight to the customers made for them
            cache.learn({k: real.get(c, c) for k, c in owner.items()}, merged=False)
    result.customer_ids = [per_set[i] for i in record_set]
    return result
