"""Read-side queries for the CLI and the web: customer lists, search and one customer's record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from scrm.errors import NotFound
from scrm.models import (
    Account,
    Customer,
    CustomerMerge,
    CustomerTag,
    Follow,
    Identity,
    Interaction,
    Purchase,
    Relation,
    Tag,
)
from scrm.search import catch_up, matching_ids
from scrm.store import Store

__all__ = ["CustomerSummary", "customer_record", "list_customers"]

customer_t = Customer.__table__  # type: ignore[attr-defined]
identity_t = Identity.__table__  # type: ignore[attr-defined]
purchase_t = Purchase.__table__  # type: ignore[attr-defined]
Sort = Literal["id", "spent", "recent", "orders"]


@dataclass(frozen=True)
class CustomerSummary:
    id: int
    name: str
    keys: list[str]
    orders: int
    spent: dict[str, int]  # currency -> minor units
    last_purchase: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "keys": self.keys,
            "orders": self.orders,
            "spent_minor": self.spent,
            "last_purchase": self.last_purchase.isoformat() if self.last_purchase else None,
        }


def list_customers(
    store: Store,
    *,
    search: str | None = None,
    sort: Sort = "id",
    limit: int = 50,
    offset: int = 0,
    within: sa.Select[Any] | None = None,
) -> tuple[int, list[CustomerSummary]]:
    """(number of matching customers, one page of them). ``search`` matches names and keys as
    :mod:`scrm.search` says (3+ characters anywhere, shorter ones the start of a name);
    ``within``, a select of customer ids, keeps only those customers."""
    c = customer_t.c
    where = [c.merged_into_id.is_(None)]
    if within is not None:
        where.append(c.id.in_(within))
    p = purchase_t.c
    stats = (
        sa.select(
            p.customer_id,
            sa.func.count().label("orders"),
            sa.func.sum(p.amount_minor).label("spent"),
            sa.func.max(p.occurred_at).label("last"),
        )
        .group_by(p.customer_id)
        .subquery()
    )
    order = {
        "id": [c.id],
        "spent": [sa.func.coalesce(stats.c.spent, 0).desc(), c.id],
        "recent": [stats.c.last.desc().nulls_last(), c.id],
        "orders": [sa.func.coalesce(stats.c.orders, 0).desc(), c.id],
    }[sort]
    if search and search.strip():
        with store.connect() as conn:  # its own transaction: SQLite indexes new rows first
            catch_up(conn)
    with store.connect() as conn:
        if search and search.strip():
            where.append(c.id.in_(matching_ids(conn, search)))
        total = conn.execute(sa.select(sa.func.count()).select_from(customer_t).where(*where))
        count = int(total.scalar_one())
        if sort == "id":  # no need to aggregate every customer for the default page
            page_ids = sa.select(c.id).where(*where).order_by(c.id).limit(limit).offset(offset)
            query = sa.select(c.id, c.display_name).where(c.id.in_(page_ids)).order_by(c.id)
        else:
            query = (
                sa.select(c.id, c.display_name)
                .select_from(customer_t.outerjoin(stats, stats.c.customer_id == c.id))
                .where(*where)
                .order_by(*order)
                .limit(limit)
                .offset(offset)
            )
        page = conn.execute(query).all()
        ids = [row.id for row in page]
        keys: dict[int, list[str]] = {i: [] for i in ids}
        spent: dict[int, dict[str, int]] = {i: {} for i in ids}
        orders: dict[int, int] = dict.fromkeys(ids, 0)
        last: dict[int, datetime | None] = dict.fromkeys(ids)
        if ids:
            i = identity_t.c
            for row in conn.execute(
                sa.select(i.customer_id, i.kind, i.value)
                .where(i.customer_id.in_(ids))
                .order_by(i.customer_id, i.id)
            ):
                keys[row.customer_id].append(f"{row.kind}:{row.value}")
            for row in conn.execute(
                sa.select(
                    p.customer_id,
                    p.currency,
                    sa.func.count(),
                    sa.func.sum(p.amount_minor),
                    sa.func.max(p.occurred_at),
                )
                .where(p.customer_id.in_(ids))
                .group_by(p.customer_id, p.currency)
            ):
                cid, currency, n, total_minor, latest = row
                spent[cid][currency] = int(total_minor)
                orders[cid] += n
                if latest and (last[cid] is None or latest > last[cid]):
                    last[cid] = latest
    return count, [
        CustomerSummary(r.id, r.display_name, keys[r.id], orders[r.id], spent[r.id], last[r.id]) for r in page
    ]


def _rows(conn: sa.Connection, query: sa.Select[Any]) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in conn.execute(query)]


def _acquisition(follows: list[dict[str, Any]], referred_by: int | None, referred: int) -> dict[str, Any]:
    """How the customer came: the channel and scene of their first follow, who referred them."""
    first = follows[0] if follows else None
    return {
        "channel": first["channel"] if first else "",
        "scene": first["scene"] if first else "",
        "account": first["account"] if first else None,
        "referred_by": referred_by,
        "referred": referred,
    }


def customer_record(store: Store, customer_id: int, *, limit: int = 50) -> dict[str, Any]:
    """Everything stored about one customer: identities (with merges), follows, tags,
    the latest interactions and purchases, and purchase totals per currency.

    A customer that was merged into another is answered with the one it was merged into
    (``merged_from`` says so).
    """
    c = customer_t.c
    with store.connect() as conn:
        row = conn.execute(sa.select(customer_t).where(c.id == customer_id)).first()
        if row is None:
            raise NotFound(f"no customer {customer_id} (list them with `scrm customers`)")
        merged_from = None
        seen = {customer_id}
        while row.merged_into_id is not None and row.merged_into_id not in seen:
            merged_from = merged_from or customer_id
            seen.add(row.merged_into_id)
            row = conn.execute(sa.select(customer_t).where(c.id == row.merged_into_id)).one()
        cid = row.id
        i = identity_t.c
        a = Account.__table__.c  # type: ignore[attr-defined]
        identities = _rows(
            conn,
            sa.select(i.kind, i.value, i.platform, a.name.label("account"), i.source, i.created_at)
            .select_from(identity_t.outerjoin(Account.__table__, a.id == i.account_id))  # type: ignore[attr-defined]
            .where(i.customer_id == cid)
            .order_by(i.id),
        )
        m = CustomerMerge.__table__.c  # type: ignore[attr-defined]
        merges = _rows(
            conn,
            sa.select(
                m.id, m.kept_id, m.merged_id, m.key_kind, m.key_value, m.reason, m.created_at, m.undone_at
            )
            .add_columns(m.evidence)
            .where(sa.or_(m.kept_id == cid, m.merged_id == cid))
            .order_by(m.id),
        )
        for merge in merges:  # why (the evidence) and how to undo it
            merge["evidence"] = json.loads(merge["evidence"])
            merge["undo"] = "" if merge["undone_at"] else f"scrm unmerge {merge['id']}"
        f = Follow.__table__.c  # type: ignore[attr-defined]
        follows = _rows(
            conn,
            sa.select(a.name.label("account"), f.subscribed_at, f.unsubscribed_at, f.scene, f.channel)
            .select_from(Follow.__table__.join(Account.__table__, a.id == f.account_id))  # type: ignore[attr-defined]
            .where(f.customer_id == cid)
            .order_by(f.subscribed_at),
        )
        r = Relation.__table__.c  # type: ignore[attr-defined]
        referred_by = conn.execute(
            sa.select(r.target_id).where(r.kind == "referred_by", r.source_id == cid).order_by(r.first_at)
        ).scalar()
        referred = conn.execute(
            sa.select(sa.func.count()).where(r.kind == "referred_by", r.target_id == cid)
        ).scalar_one()
        t, ct = Tag.__table__.c, CustomerTag.__table__.c  # type: ignore[attr-defined]
        tags = list(
            conn.execute(
                sa.select(t.name)
                .join_from(CustomerTag.__table__, Tag.__table__, t.id == ct.tag_id)  # type: ignore[attr-defined]
                .where(ct.customer_id == cid)
                .order_by(t.name)
            ).scalars()
        )
        x = Interaction.__table__.c  # type: ignore[attr-defined]
        interactions = _rows(
            conn,
            sa.select(x.kind, x.platform, x.occurred_at, x.target_customer_id, x.content, x.channel)
            .where(sa.or_(x.customer_id == cid, x.target_customer_id == cid))
            .order_by(x.occurred_at.desc())
            .limit(limit),
        )
        p = purchase_t.c
        purchases = _rows(
            conn,
            sa.select(p.source, p.order_id, p.amount_minor, p.currency, p.occurred_at)
            .where(p.customer_id == cid)
            .order_by(p.occurred_at.desc(), p.id.desc())
            .limit(limit),
        )
        totals = {
            currency: {"orders": n, "spent_minor": int(total)}
            for currency, n, total in conn.execute(
                sa.select(p.currency, sa.func.count(), sa.func.sum(p.amount_minor))
                .where(p.customer_id == cid)
                .group_by(p.currency)
            )
        }
    return {
        "id": cid,
        "name": row.display_name,
        "created_at": row.created_at,
        "opted_out_at": row.opted_out_at,
        "merged_from": merged_from,
        "identities": identities,
        "merges": merges,
        "follows": follows,
        "acquisition": _acquisition(follows, referred_by, int(referred)),
        "tags": tags,
        "purchase_totals": totals,
        "purchases": purchases,
        "interactions": interactions,
    }
