"""The store's contract, run against SQLite and PostgreSQL alike (see the ``store`` fixture)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel, select

import scrm.models_web  # noqa: F401  (the web tables, compared with the migrations too)
from scrm.errors import SchemaOutOfDate, StoreError
from scrm.identity import Key, resolve
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
from scrm.purchases import PurchaseRow, write_purchases
from scrm.search import is_search_object
from scrm.store import Store

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
PHONE = Key("phone", "", "+8613800138000")
EMAIL = Key("email", "", "li@example.com")
UNIONID = Key("unionid", "", "u-123")


def test_new_database_has_no_schema_until_init(empty_store: Store) -> None:
    with pytest.raises(SchemaOutOfDate, match="scrm init"):
        empty_store.check_schema()
    before, after = empty_store.upgrade()
    assert before is None and after == empty_store.head_revision()
    empty_store.check_schema()
    assert empty_store.upgrade() == (after, after)  # running init again changes nothing


def _not_search(name: str | None, kind: str, parent: object) -> bool:
    """The trigram indexes and FTS5 tables of migration 0009 are not on the models (see scrm.search)."""
    return not is_search_object(name)


def test_migrations_match_the_models(store: Store) -> None:
    with store.connect() as conn:
        opts = {"compare_type": True, "include_name": _not_search}
        context = MigrationContext.configure(conn, opts=opts)
        assert compare_metadata(context, SQLModel.metadata) == []


def test_times_come_back_aware_and_in_utc(store: Store) -> None:
    shanghai = timezone(timedelta(hours=8))
    with store.session() as s:
        s.add(Customer(display_name="a", created_at=datetime(2026, 5, 1, 20, 0, tzinfo=shanghai)))
    with store.session() as s:
        customer = s.exec(select(Customer)).one()
    assert customer.created_at == T0
    assert customer.created_at.tzinfo is not None
    assert customer.created_at.utcoffset() == timedelta(0)


def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), store.session() as s:
        s.add(Customer(display_name="a", created_at=datetime(2026, 5, 1, 12, 0)))


def test_foreign_keys_are_enforced(store: Store) -> None:
    row = PurchaseRow("shop", "o-1", 999_999, 100, "CNY", T0)
    with pytest.raises(sa.exc.IntegrityError), store.connect() as conn:
        conn.execute(sa.insert(Purchase.__table__), [row._asdict()])  # type: ignore[attr-defined]


def test_resolve_creates_then_finds_customers(store: Store) -> None:
    with store.connect() as conn:
        first = resolve(conn, [[PHONE], [EMAIL], [PHONE]], source="test", names=["Li", "Wang", ""])
    assert first.customers_created == 2
    assert first.identities_added == 2
    assert first.customer_ids[0] == first.customer_ids[2] != first.customer_ids[1]
    with store.connect() as conn:
        again = resolve(conn, [[EMAIL], [PHONE]], source="test")
    assert again.customers_created == 0 and again.identities_added == 0
    assert again.customer_ids == [first.customer_ids[1], first.customer_ids[0]]
    with store.session() as s:
        names = {c.id: c.display_name for c in s.exec(select(Customer))}
    assert names == {first.customer_ids[0]: "Li", first.customer_ids[1]: "Wang"}


def test_a_new_key_attaches_to_the_customer_it_arrives_with(store: Store) -> None:
    with store.connect() as conn:
        (cid,) = resolve(conn, [[PHONE]], source="shop").customer_ids
    with store.connect() as conn:
        result = resolve(conn, [[PHONE, EMAIL]], source="mall")
    assert result.customer_ids == [cid] and result.identities_added == 1 and not result.merges
    with store.session() as s:
        rows = s.exec(select(Identity).order_by(Identity.id)).all()
    assert [(i.kind, i.customer_id, i.source) for i in rows] == [
        ("phone", cid, "shop"),
        ("email", cid, "mall"),
    ]


def test_customers_sharing_a_key_are_merged_with_history_kept(store: Store) -> None:
    with store.connect() as conn:
        phone_cid, email_cid = resolve(conn, [[PHONE], [EMAIL]], source="shop").customer_ids
        write_purchases(
            conn,
            [
                PurchaseRow("shop", "o-1", phone_cid, 10_000, "CNY", T0),
                PurchaseRow("shop", "o-2", email_cid, 20_000, "CNY", T0),
            ],
        )
        account_id = conn.execute(
            sa.insert(Account.__table__).returning(Account.__table__.c.id),  # type: ignore[attr-defined]
            {
                "name": "a",
                "platform": "wechat",
                "external_id": "wx1",
                "display_name": "",
                "created_at": T0,
            },
        ).scalar_one()
        tag_id = conn.execute(
            sa.insert(Tag.__table__).returning(Tag.__table__.c.id),
            {"name": "vip"},  # type: ignore[attr-defined]
        ).scalar_one()
        for cid in (phone_cid, email_cid):  # both carry the tag: the merge must not collide
            conn.execute(
                sa.insert(CustomerTag.__table__),
                {
                    "customer_id": cid,
                    "tag_id": tag_id,  # type: ignore[attr-defined]
                    "created_at": T0,
                },
            )
        conn.execute(
            sa.insert(Follow.__table__),
            {
                "account_id": account_id,
                "customer_id": email_cid,  # type: ignore[attr-defined]
                "subscribed_at": T0,
                "scene": "",
                "channel": "",
            },
        )
    with store.connect() as conn:
        result = resolve(conn, [[EMAIL, PHONE]], source="crm")
    assert result.customer_ids == [phone_cid]  # the older customer is kept
    assert [(m.kept_id, m.merged_id, m.key.kind) for m in result.merges] == [(phone_cid, email_cid, "email")]
    with store.session() as s:
        assert {p.customer_id for p in s.exec(select(Purchase))} == {phone_cid}
        assert {i.customer_id for i in s.exec(select(Identity))} == {phone_cid}
        assert [f.customer_id for f in s.exec(select(Follow))] == [phone_cid]
        assert [t.customer_id for t in s.exec(select(CustomerTag))] == [phone_cid]
        merged = s.get(Customer, email_cid)
        assert merged is not None and merged.merged_into_id == phone_cid  # kept as history
        (record,) = s.exec(select(CustomerMerge)).all()
        assert (record.kept_id, record.merged_id) == (phone_cid, email_cid)
        assert "li@example.com" in record.reason


def test_merges_within_one_batch_resolve_every_record(store: Store) -> None:
    with store.connect() as conn:
        result = resolve(conn, [[PHONE], [EMAIL], [UNIONID], [PHONE, EMAIL], [EMAIL, UNIONID]], source="t")
    assert len(set(result.customer_ids)) == 1
    assert result.customers_created == 1 and result.identities_added == 3


def test_purchases_are_stored_once(store: Store) -> None:
    with store.connect() as conn:
        (cid,) = resolve(conn, [[PHONE]], source="t").customer_ids
    rows = [PurchaseRow("shop", f"o-{i}", cid, 100 * i, "CNY", T0 + timedelta(days=i)) for i in range(50)]
    with store.connect() as conn:
        assert write_purchases(conn, rows[:30]) == 30
    with store.connect() as conn:
        assert write_purchases(conn, rows) == 20
    with store.connect() as conn:
        assert write_purchases(conn, rows) == 0
        # the same order id from another source is another order
        assert write_purchases(conn, [rows[0]._replace(source="mall")]) == 1
    with store.session() as s:
        stored = s.exec(select(Purchase).where(Purchase.source == "shop")).all()
    assert sorted(p.amount_minor for p in stored) == [100 * i for i in range(50)]
    assert {p.occurred_at for p in stored} == {T0 + timedelta(days=i) for i in range(50)}


def test_interactions_are_unique_per_platform_and_external_id(store: Store) -> None:
    with store.connect() as conn:
        (cid,) = resolve(conn, [[PHONE]], source="t").customer_ids
    row = {
        "platform": "wechat",
        "external_id": "msg-1",
        "kind": "message",
        "customer_id": cid,
        "occurred_at": T0,
        "content": "你好",
        "channel": "",
    }
    table = Interaction.__table__  # type: ignore[attr-defined]
    with store.connect() as conn:
        conn.execute(sa.insert(table), row)
    with pytest.raises(sa.exc.IntegrityError), store.connect() as conn:
        conn.execute(sa.insert(table), row)
    with store.connect() as conn:
        conn.execute(sa.insert(table), {**row, "platform": "wecom"})
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 2


def test_follow_history_is_kept_across_unsubscribe_and_resubscribe(store: Store) -> None:
    with store.session() as s:
        account = Account(name="a", platform="wechat", external_id="wx1")
        customer = Customer()
        s.add_all([account, customer])
        s.flush()
        s.add(
            Follow(
                account_id=account.id,
                customer_id=customer.id,
                subscribed_at=T0,  # type: ignore[arg-type]
                scene="ADD_SCENE_QR_CODE",
                channel="chan_a",
            )
        )
    with store.session() as s:
        follow = s.exec(select(Follow)).one()
        follow.unsubscribed_at = T0 + timedelta(days=3)
        s.add(
            Follow(
                account_id=follow.account_id,
                customer_id=follow.customer_id,
                subscribed_at=T0 + timedelta(days=9),
                scene="ADD_SCENE_SEARCH",
            )
        )
    with store.session() as s:
        periods = [
            (f.subscribed_at, f.unsubscribed_at, f.channel)
            for f in s.exec(select(Follow).order_by(Follow.subscribed_at))
        ]
    assert periods == [(T0, T0 + timedelta(days=3), "chan_a"), (T0 + timedelta(days=9), None, "")]


def test_relations_are_unique_per_kind_and_direction(store: Store) -> None:
    with store.connect() as conn:
        a, b = resolve(conn, [[PHONE], [EMAIL]], source="t").customer_ids
    with store.session() as s:
        s.add(Relation(kind="referred_by", source_id=b, target_id=a, first_at=T0, last_at=T0))
        s.add(Relation(kind="interacts_with", source_id=b, target_id=a, first_at=T0, last_at=T0))
        s.add(Relation(kind="referred_by", source_id=a, target_id=b, first_at=T0, last_at=T0))
    with pytest.raises(sa.exc.IntegrityError), store.session() as s:
        s.add(Relation(kind="referred_by", source_id=b, target_id=a, first_at=T0, last_at=T0))


def test_a_failed_transaction_loses_nothing_already_stored(store: Store) -> None:
    with store.connect() as conn:
        (cid,) = resolve(conn, [[PHONE]], source="t").customer_ids
        write_purchases(conn, [PurchaseRow("shop", "o-1", cid, 100, "CNY", T0)])
    with pytest.raises(RuntimeError), store.connect() as conn:
        write_purchases(conn, [PurchaseRow("shop", "o-2", cid, 100, "CNY", T0)])
        raise RuntimeError("crash mid-batch")
    with store.session() as s:
        assert [p.order_id for p in s.exec(select(Purchase))] == ["o-1"]


def test_a_failed_multi_row_insert_undoes_only_itself(store: Store) -> None:
    """A bulk statement that breaks a unique key halfway leaves none of its rows, and the rows of the
    transaction's earlier statements stay (SQLite: its statement journal, kept in memory)."""
    table = Account.__table__  # type: ignore[attr-defined]

    def rows(*names: str) -> list[dict[str, object]]:
        return [{"name": n, "platform": "wechat", "external_id": f"wx-{n}", "created_at": T0} for n in names]

    with store.connect() as conn:
        conn.execute(sa.insert(table), rows("a", "b"))
        # PostgreSQL aborts the whole transaction on an error, so there it runs in a savepoint;
        # SQLite undoes the one statement by itself
        undo = conn.begin_nested() if store.dialect == "postgresql" else contextlib.nullcontext()
        with pytest.raises(sa.exc.IntegrityError), undo:
            conn.execute(sa.insert(table).values(rows("c", "d", "a", "e")))
        conn.execute(sa.insert(table), rows("f"))
    with store.connect() as conn:
        names = conn.execute(sa.select(table.c.name).order_by(table.c.name)).scalars().all()
        if store.dialect == "sqlite":
            assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 2  # MEMORY
    assert names == ["a", "b", "f"]


def test_unreachable_database_is_a_clear_error() -> None:
    store = Store("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StoreError, match=r"cannot reach the database postgresql\+psycopg://nobody@"):
        store.check_schema()


def test_database_url_passwords_are_redacted() -> None:
    store = Store("postgresql://scrm:topsecret@127.0.0.1:1/none?connect_timeout=2")
    assert "topsecret" not in repr(store)
    with pytest.raises(StoreError) as info:
        store.check_schema()
    assert "topsecret" not in str(info.value)
