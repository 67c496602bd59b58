"""Merging two customers into one, recording why and which rows moved, and undoing it.

:func:`merge_customers` re-points every row of the merged customer (identities, follows, interactions,
purchases, group memberships, staff contacts, tags, relations) to the kept one. Before each bulk
``UPDATE`` it records the ids it is about to move with one ``INSERT ... SELECT`` into ``merge_moved_row``
(no per-row Python: it runs on the purchases-import path). A unique row the kept customer already
had (a tag, a relation, a follow with the same start) is a *dropped* row: it is deleted from the
merged customer and kept as JSON in ``merge_moved_row.data``. The ``customer_merge`` row keeps the
evidence (how it was decided, the shared key, where each side's key was learnt).

:func:`unmerge` puts back exactly the rows the merge moved or dropped, clears ``merged_into_id`` and
marks the merge ``undone_at``. Rows created *after* the merge (a purchase imported later, a new
identity) stay with the kept customer: a purchase row does not say which key brought it in, so there is
nothing to decide its owner by. Score history (``customer_score``, ``stage_change``) is never moved by a
merge, so it is never lost and needs no restoring.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from scrm.errors import MergeRefused, NotFound
from scrm.models import (
    Customer,
    CustomerMerge,
    CustomerTag,
    Follow,
    GroupMembership,
    Identity,
    Interaction,
    MergeMovedRow,
    MergeSuggestion,
    Purchase,
    Relation,
    StaffContact,
    utcnow,
)

__all__ = ["UnmergeResult", "find_merge", "manual_merge", "merge_customers", "move_late_purchases", "unmerge"]

customer_t = Customer.__table__  # type: ignore[attr-defined]
merge_t = CustomerMerge.__table__  # type: ignore[attr-defined]
moved_t = MergeMovedRow.__table__  # type: ignore[attr-defined]
tag_t = CustomerTag.__table__  # type: ignore[attr-defined]
rel_t = Relation.__table__  # type: ignore[attr-defined]
identity_t = Identity.__table__  # type: ignore[attr-defined]
suggestion_t = MergeSuggestion.__table__  # type: ignore[attr-defined]

follow_t = Follow.__table__  # type: ignore[attr-defined]
group_member_t = GroupMembership.__table__  # type: ignore[attr-defined]
#: what a merge re-points: (table, column, the column that names a row, the columns that with
#: ``column`` are unique: a row the kept customer already has is dropped, the others move)
_MOVES: tuple[tuple[sa.Table, str, str, tuple[str, ...]], ...] = (
    (identity_t, "customer_id", "id", ()),
    (Purchase.__table__, "customer_id", "id", ()),  # type: ignore[attr-defined]
    (Interaction.__table__, "customer_id", "id", ()),  # type: ignore[attr-defined]
    (Interaction.__table__, "target_customer_id", "id", ()),  # type: ignore[attr-defined]
    (follow_t, "customer_id", "id", ("account_id", "subscribed_at")),
    (group_member_t, "customer_id", "id", ("group_id", "joined_at")),
    (group_member_t, "invited_by_id", "id", ()),
    (StaffContact.__table__, "customer_id", "id", ("account_id", "staff", "added_at")),  # type: ignore[attr-defined]
    (tag_t, "customer_id", "tag_id", ("tag_id",)),
    (rel_t, "source_id", "id", ("kind", "target_id")),
    (rel_t, "target_id", "id", ("kind", "source_id")),
)
_MOVED_COLUMNS = ["merge_id", "table_name", "column_name", "row_id", "action", "data"]


def _key_dict(key: Any) -> dict[str, str]:
    return {"kind": key[0], "scope": key[1], "value": key[2]}


_SOURCE_OF_KEY = sa.select(identity_t.c.source).where(
    identity_t.c.kind == sa.bindparam("k_kind"),
    identity_t.c.scope == sa.bindparam("k_scope"),
    identity_t.c.value == sa.bindparam("k_value"),
)


def _sides(conn: Connection, evidence: dict[str, Any]) -> None:
    """Add the source each side's key was learnt from (one small query per key)."""
    for side in ("key", "kept_key"):
        key = evidence.get(side)
        if key is None:
            continue
        params = {"k_kind": key["kind"], "k_scope": key["scope"], "k_value": key["value"]}
        key["source"] = conn.execute(_SOURCE_OF_KEY, params).scalar() or ""


def _record(table: sa.Table, column: str, id_col: Any, where: Any) -> sa.Insert:
    """``INSERT INTO merge_moved_row SELECT :m_id, table, column, id, 'moved', '' FROM table WHERE ...``."""
    return sa.insert(moved_t).from_select(
        _MOVED_COLUMNS,
        sa.select(
            sa.bindparam("m_id", type_=sa.Integer),
            sa.literal(table.name),
            sa.literal(column),
            id_col,
            sa.literal("moved"),
            sa.literal(""),
        ).where(where),
    )


@dataclass(frozen=True)
class _MoveStatements:
    """The statements that move one column of one table, built once (bound: m_id, m_kept, m_merged)."""

    table: sa.Table
    column: str
    id_col: str
    record: sa.Insert
    update: sa.Update
    dropped: sa.Select[Any] | None
    delete: sa.Delete | None


def _build(table: sa.Table, column: str, id_col: str, unique: tuple[str, ...]) -> _MoveStatements:
    kept, merged = sa.bindparam("m_kept", type_=sa.Integer), sa.bindparam("m_merged", type_=sa.Integer)
    where = table.c[column] == merged
    free = where
    if unique:  # the kept customer's own row wins; a tie between the two (a self-loop) is dropped
        mine = table.alias("kept_row")
        free = sa.and_(
            where, ~sa.exists().where(mine.c[column] == kept, *[mine.c[u] == table.c[u] for u in unique])
        )
        if table is rel_t:
            free = sa.and_(free, *[table.c[u] != kept for u in unique if u.endswith("_id")])
    return _MoveStatements(
        table,
        column,
        id_col,
        _record(table, column, table.c[id_col], free),
        sa.update(table).where(free).values({column: kept}),
        sa.select(table).where(where) if unique else None,
        sa.delete(table).where(where) if unique else None,
    )


_STATEMENTS: list[_MoveStatements] = []


def _statements() -> list[_MoveStatements]:
    if not _STATEMENTS:
        _STATEMENTS.extend(_build(*move) for move in _MOVES)
    return _STATEMENTS


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _drop(conn: Connection, move: _MoveStatements, params: dict[str, int]) -> None:
    """Keep the merged customer's conflicting rows as JSON in merge_moved_row, then delete them."""
    assert move.dropped is not None and move.delete is not None
    rows = conn.execute(move.dropped, params).mappings().all()
    if not rows:
        return
    conn.execute(
        sa.insert(moved_t),
        [
            {
                "merge_id": params["m_id"],
                "table_name": move.table.name,
                "column_name": move.column,
                "row_id": row[move.id_col],
                "action": "dropped",
                "data": json.dumps({k: _jsonable(v) for k, v in row.items()}),
            }
            for row in rows
        ],
    )
    conn.execute(move.delete, params)


def merge_customers(
    conn: Connection,
    kept: int,
    merged: int,
    *,
    key: tuple[str, str, str],
    reason: str,
    evidence: Mapping[str, Any] | None = None,
) -> int:
    """Merge customer ``merged`` into ``kept``; return the id of the ``customer_merge`` row.

    Every row is re-pointed with a bulk ``UPDATE`` after its ids were recorded for :func:`unmerge`;
    the merged customer row stays, with ``merged_into_id`` set, as history.
    """
    record = {"by": "auto", "key": _key_dict(key), **(evidence or {})}
    _sides(conn, record)
    merge_id: int = conn.execute(
        sa.insert(merge_t).returning(merge_t.c.id),
        {
            "kept_id": kept,
            "merged_id": merged,
            "key_kind": key[0],
            "key_value": key[2],
            "reason": reason,
            "created_at": utcnow(),
            "evidence": json.dumps(record, sort_keys=True),
        },
    ).scalar_one()
    params = {"m_id": merge_id, "m_kept": kept, "m_merged": merged}
    for move in _statements():
        conn.execute(move.record, params)
        conn.execute(move.update, params)
        if move.dropped is not None:
            _drop(conn, move, params)
    conn.execute(sa.update(customer_t).where(customer_t.c.id == merged).values(merged_into_id=kept))
    return merge_id


def move_late_purchases(conn: Connection, merged: int, kept: int) -> None:
    """Move purchases written for ``merged`` after it was merged into ``kept`` (a batch that was in
    flight during the merge), recording them with that merge so that :func:`unmerge` moves them back."""
    m = merge_t.c
    merge_id = conn.execute(
        sa.select(sa.func.max(m.id)).where(m.merged_id == merged, m.kept_id == kept, m.undone_at.is_(None))
    ).scalar()
    purchase_t = Purchase.__table__  # type: ignore[attr-defined]
    where = purchase_t.c.customer_id == sa.bindparam("m_merged", type_=sa.Integer)
    params = {"m_id": merge_id, "m_merged": merged}
    if merge_id is not None:
        conn.execute(_record(purchase_t, "customer_id", purchase_t.c.id, where), params)
    conn.execute(sa.update(purchase_t).where(where).values(customer_id=kept), params)


def _live(conn: Connection, customer_id: int) -> Any:
    row = conn.execute(sa.select(customer_t).where(customer_t.c.id == customer_id)).first()
    if row is None:
        raise NotFound(f"no customer {customer_id} (list them with `scrm customers`)")
    if row.merged_into_id is not None:
        raise MergeRefused(
            f"customer {customer_id} was merged into {row.merged_into_id}: merge that one, "
            f"or undo the merge first (`scrm customer {customer_id}` shows it)"
        )
    return row


def manual_merge(conn: Connection, kept: int, merged: int, *, reason: str) -> int:
    """Merge ``merged`` into ``kept`` by hand (``scrm merge``); an open suggestion of the pair is accepted.

    The evidence records ``by: manual``, the reason, and the suggestion's clues when there was one.
    """
    if kept == merged:
        raise MergeRefused("a customer cannot be merged with itself")
    if not reason.strip():
        raise MergeRefused("give a --reason: it is kept with the merge")
    _live(conn, kept)
    _live(conn, merged)
    s = suggestion_t.c
    pair = (s.customer_a == min(kept, merged)) & (s.customer_b == max(kept, merged))
    suggestion = conn.execute(sa.select(s.id, s.score, s.evidence).where(pair)).first()
    evidence: dict[str, Any] = {"by": "manual", "reason": reason}
    if suggestion is not None:
        evidence["suggestion"] = {
            "id": suggestion.id,
            "score": suggestion.score,
            "clues": json.loads(suggestion.evidence),
        }
        conn.execute(sa.update(suggestion_t).where(pair).values(status="accepted", decided_at=utcnow()))
    return merge_customers(
        conn, kept, merged, key=("manual", "", str(merged)), reason=reason, evidence=evidence
    )


def find_merge(conn: Connection, merge_or_customer: int, *, by_customer: bool = False) -> int:
    """The id of a merge, given its id or (``by_customer``) the merged customer's id (latest not undone)."""
    m = merge_t.c
    if by_customer:
        found = conn.execute(
            sa.select(m.id)
            .where(m.merged_id == merge_or_customer, m.undone_at.is_(None))
            .order_by(m.id.desc())
        ).scalar()
        if found is None:
            raise NotFound(f"customer {merge_or_customer} is not merged into anyone")
        return int(found)
    if conn.execute(sa.select(m.id).where(m.id == merge_or_customer)).scalar() is None:
        raise NotFound(f"no merge {merge_or_customer} (`scrm customer ID` lists a customer's merges)")
    return merge_or_customer


@dataclass(frozen=True)
class UnmergeResult:
    merge_id: int
    kept_id: int
    restored_id: int
    rows_moved_back: int
    rows_restored: int


def _restore_dropped(conn: Connection, table: sa.Table, data: str) -> None:
    from scrm.identity import insert_ignoring_conflicts  # (identity imports this module)

    row = json.loads(data)
    for column in table.c:
        if isinstance(row.get(column.name), str) and "_at" in column.name:
            row[column.name] = datetime.fromisoformat(row[column.name])
    conn.execute(insert_ignoring_conflicts(conn, table), row)


def unmerge(conn: Connection, merge_id: int) -> UnmergeResult:
    """Undo merge ``merge_id``: the merged customer gets back exactly the rows that merge moved or dropped.

    Refused when the merge is already undone, or when the kept customer was itself merged into
    another later (undo that merge first: its record holds these rows too).
    """
    m = merge_t.c
    merge = conn.execute(sa.select(merge_t).where(m.id == merge_id)).first()
    if merge is None:
        raise NotFound(f"no merge {merge_id} (`scrm customer ID` lists a customer's merges)")
    if merge.undone_at is not None:
        raise MergeRefused(f"merge {merge_id} was already undone at {merge.undone_at:%Y-%m-%d %H:%M} UTC")
    later = conn.execute(
        sa.select(m.id).where(m.merged_id == merge.kept_id, m.undone_at.is_(None), m.id > merge_id)
    ).scalar()
    if later is not None:
        raise MergeRefused(
            f"customer {merge.kept_id} was merged again later (merge {later}): `scrm unmerge {later}` first"
        )
    kept, merged = merge.kept_id, merge.merged_id
    mv = moved_t.c
    groups = conn.execute(
        sa.select(mv.table_name, mv.column_name, mv.action, sa.func.count())
        .where(mv.merge_id == merge_id)
        .group_by(mv.table_name, mv.column_name, mv.action)
    ).all()
    tables = {t.name: t for t, *_ in _MOVES}
    moved_back = restored = 0
    for table_name, column, action, count in groups:
        table = tables[table_name]
        ids = sa.select(mv.row_id).where(
            mv.merge_id == merge_id,
            mv.table_name == table_name,
            mv.column_name == column,
            mv.action == action,
        )
        if action == "moved":
            if table is tag_t:
                where = sa.and_(tag_t.c.customer_id == kept, tag_t.c.tag_id.in_(ids))
            else:
                where = table.c.id.in_(ids)
            moved_back += conn.execute(sa.update(table).where(where).values({column: merged})).rowcount
        else:
            datas = conn.execute(
                sa.select(mv.data)
                .where(mv.merge_id == merge_id, mv.table_name == table_name, mv.column_name == column)
                .where(mv.action == "dropped")
            ).scalars()
            for data in datas:
                _restore_dropped(conn, table, data)
            restored += int(count)
    conn.execute(sa.update(customer_t).where(customer_t.c.id == merged).values(merged_into_id=None))
    conn.execute(sa.update(merge_t).where(m.id == merge_id).values(undone_at=utcnow()))
    s = suggestion_t.c
    pair = (s.customer_a == min(kept, merged)) & (s.customer_b == max(kept, merged))
    conn.execute(sa.update(suggestion_t).where(pair).values(status="rejected", decided_at=utcnow()))
    return UnmergeResult(merge_id, kept, merged, moved_back, restored)
