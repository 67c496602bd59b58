"""Merges record their evidence and the rows they moved; unmerge restores exactly those rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine import Connection

from scrm.cli import cli
from scrm.errors import MergeRefused
from scrm.identity import resolve
from scrm.merge_suggestions import compute_suggestions, list_suggestions
from scrm.merges import find_merge, manual_merge, unmerge
from scrm.models import (
    Account,
    Customer,
    CustomerGroup,
    CustomerMerge,
    CustomerTag,
    Follow,
    GroupMembership,
    Identity,
    Interaction,
    MergeMovedRow,
    Purchase,
    Relation,
    Tag,
)
from scrm.purchases import repoint_purchases
from scrm.store import Store

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)
APPID = "wx00000000brand1"
PHONE = ("phone", "", "+8613800138000")
OPENID = ("openid", APPID, "oBRAND-b")
TABLES = [Customer, Identity, Purchase, Interaction, Follow, CustomerTag, Relation]


def table(model: Any) -> sa.Table:
    return model.__table__  # type: ignore[no-any-return]


def snapshot(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every customer table, in primary-key order."""
    out = {}
    for model in TABLES:
        t = table(model)
        out[t.name] = [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
    return out


def one(conn: Connection, keys: list[tuple[str, str, str]], name: str = "") -> int:
    return resolve(conn, [keys], source="test", names=[name]).customer_ids[0]


def populate(conn: Connection) -> tuple[int, int, int, int]:
    """Customers A (phone), B (openid) with rows of every kind, X and Y to tie them to."""
    account_id = conn.execute(
        sa.insert(table(Account)).returning(table(Account).c.id),
        {"name": "brand", "platform": "wechat", "external_id": APPID, "created_at": T0},
    ).scalar_one()
    a = one(conn, [PHONE], "Li Lei")
    b = one(conn, [OPENID], "li lei")
    x = one(conn, [("email", "", "x@example.com")])
    y = one(conn, [("email", "", "y@example.com")])
    conn.execute(
        sa.insert(table(Purchase)),
        [
            {"source": "shop", "order_id": f"o{i}", "customer_id": cid, "amount_minor": 100 * i}
            | {"currency": "CNY", "occurred_at": T0 + timedelta(days=i)}
            for i, cid in enumerate([a, b, b, x], start=1)
        ],
    )
    conn.execute(
        sa.insert(table(Interaction)),
        [
            {"platform": "wechat", "external_id": f"i{i}", "kind": "share", "customer_id": s}
            | {"target_customer_id": t, "account_id": account_id, "occurred_at": T0 + timedelta(hours=i)}
            for i, (s, t) in enumerate([(b, x), (x, b), (b, a), (a, y)])
        ],
    )
    conn.execute(
        sa.insert(table(Follow)),
        [{"account_id": account_id, "customer_id": b, "subscribed_at": T0, "scene": "ADD_SCENE_QR_CODE"}],
    )
    tag_ids = [
        conn.execute(
            sa.insert(table(Tag)).returning(table(Tag).c.id), {"name": name, "account_id": account_id}
        ).scalar_one()
        for name in ("vip", "new")
    ]
    conn.execute(
        sa.insert(table(CustomerTag)),
        [
            {"customer_id": a, "tag_id": tag_ids[0], "created_at": T0},
            {"customer_id": b, "tag_id": tag_ids[0], "created_at": T0 + timedelta(days=1)},  # dropped
            {"customer_id": b, "tag_id": tag_ids[1], "created_at": T0 + timedelta(days=2)},  # moved
        ],
    )
    ties = [(a, x), (b, x), (b, y), (b, a), (x, b), (y, a)]
    conn.execute(
        sa.insert(table(Relation)),
        [
            {"kind": "interacts_with", "source_id": s, "target_id": t, "weight": 1.5 + i, "count": i + 1}
            | {"first_at": T0, "last_at": T0 + timedelta(days=i)}
            for i, (s, t) in enumerate(ties)
        ],
    )
    return a, b, x, y


def owners(conn: Connection, model: Any, column: str = "customer_id") -> list[int]:
    t = table(model)
    return sorted(conn.execute(sa.select(t.c[column])).scalars())


def test_merge_records_evidence_and_unmerge_restores_the_exact_rows(store: Store) -> None:
    with store.connect() as conn:
        a, b, _, _ = populate(conn)
        before = snapshot(conn)
        merged = resolve(conn, [[PHONE, OPENID]], source="import:shop").merges
    assert [(m.kept_id, m.merged_id) for m in merged] == [(a, b)]
    with store.connect() as conn:
        merge = conn.execute(sa.select(table(CustomerMerge))).one()
        evidence = json.loads(merge.evidence)
        assert evidence["by"] == "auto" and evidence["seen_in"] == "import:shop"
        assert evidence["key"] == {"kind": "openid", "scope": APPID, "value": "oBRAND-b", "source": "test"}
        assert evidence["kept_key"]["value"] == PHONE[2]
        # every row of B now belongs to A; the tie between A and B and B's copy of "vip" are gone
        assert b not in owners(conn, Purchase) and b not in owners(conn, Interaction)
        assert b not in owners(conn, Interaction, "target_customer_id") and b not in owners(conn, CustomerTag)
        assert b not in owners(conn, Relation, "source_id") + owners(conn, Relation, "target_id")
        assert len(conn.execute(sa.select(table(Relation))).all()) == 4  # (b,x) dropped: (a,x) exists
        actions = conn.execute(
            sa.select(table(MergeMovedRow).c.action, sa.func.count()).group_by(table(MergeMovedRow).c.action)
        ).all()
        assert dict(actions) == {"moved": 10, "dropped": 3}
    with store.connect() as conn:
        result = unmerge(conn, find_merge(conn, b, by_customer=True))
    assert (result.kept_id, result.restored_id, result.rows_restored) == (a, b, 3)
    with store.connect() as conn:
        assert snapshot(conn) == before
        assert conn.execute(sa.select(table(CustomerMerge).c.undone_at)).scalar() is not None
        with pytest.raises(MergeRefused, match="already undone"):
            unmerge(conn, merge.id)
        # the same record again: the pair stays apart, the record goes to the older customer
        again = resolve(conn, [[PHONE, OPENID]], source="import:shop")
        assert (again.customer_ids, again.merges, again.identities_added) == ([a], [], 0)
    with store.connect() as conn:
        assert snapshot(conn) == before


def test_rows_added_after_the_merge_stay_with_the_kept_customer(store: Store) -> None:
    with store.connect() as conn:
        a, b, _, _ = populate(conn)
        resolve(conn, [[PHONE, OPENID]], source="import:shop")
        # a purchase of the previous batch, written for B while the merge ran, moved after it
        row = {"source": "shop", "order_id": "late", "customer_id": b, "amount_minor": 7, "currency": "CNY"}
        conn.execute(sa.insert(table(Purchase)), row | {"occurred_at": T0})
        repoint_purchases(conn, b, a)
        # an order imported after the merge, under B's openid, resolves to A
        new = resolve(conn, [[OPENID]], source="import:shop").customer_ids[0]
        conn.execute(
            sa.insert(table(Purchase)), row | {"order_id": "after", "customer_id": new} | {"occurred_at": T0}
        )
        assert new == a
    with store.connect() as conn:
        unmerge(conn, find_merge(conn, b, by_customer=True))
    with store.connect() as conn:
        p = table(Purchase).c
        by_order = dict(conn.execute(sa.select(p.order_id, p.customer_id)).all())
    assert by_order["late"] == b  # it existed before the merge: recorded and moved back
    assert by_order["after"] == a  # created after the merge: stays (documented)
    assert by_order["o2"] == by_order["o3"] == b and by_order["o1"] == a


def test_manual_merge_and_the_order_of_undoing_chains(store: Store) -> None:
    with store.connect() as conn:
        a, b, x, _ = populate(conn)
        first = manual_merge(conn, a, b, reason="same person, checked by phone")
        second = manual_merge(conn, x, a, reason="test chain")
        with pytest.raises(MergeRefused, match="merged into"):
            manual_merge(conn, x, b, reason="b is gone")
        with pytest.raises(MergeRefused, match="itself"):
            manual_merge(conn, x, x, reason="no")
    with store.connect() as conn:
        evidence = json.loads(conn.execute(sa.select(table(CustomerMerge).c.evidence)).scalars().first())
        assert evidence == {
            "by": "manual",
            "key": {"kind": "manual", "scope": "", "value": str(b), "source": ""},
            "reason": "same person, checked by phone",
        }
        assert set(owners(conn, Purchase)) == {x}
        with pytest.raises(MergeRefused, match=f"scrm unmerge {second}"):
            unmerge(conn, first)
    with store.connect() as conn:
        unmerge(conn, second)
        unmerge(conn, first)
    with store.connect() as conn:
        p = table(Purchase).c
        assert dict(conn.execute(sa.select(p.order_id, p.customer_id)).all()) == {
            "o1": a,
            "o2": b,
            "o3": b,
            "o4": x,
        }


def scrm(runner: CliRunner, config: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_suggestions_scored_listed_accepted_and_undone_through_the_cli(
    runner: CliRunner, config_file: Path, database_url: str
) -> None:
    assert scrm(runner, config_file, "init")[0] == 0
    store = Store(database_url)
    try:
        with store.connect() as conn:
            account_id = conn.execute(sa.select(table(Account).c.id)).scalar_one()
            ids = [
                one(conn, [key], name)
                for key, name in [
                    (("phone", "", "+8613800000001"), "Li Lei"),
                    (("openid", APPID, "oLL"), "li-lei"),  # same name, same channel: 0.5125
                    (("openid", APPID, "oHM"), "Han Meimei"),
                    (("mastodon", "social.example", "hanmeimei@social.example"), "Meimei"),  # handle: 0.30
                    (("email", "", "wang@example.com"), "Wang"),
                    (("openid", APPID, "oW"), "Another Wang"),
                ]
            ]
            conn.execute(
                sa.insert(table(Follow)),
                [
                    {"account_id": account_id, "customer_id": cid, "subscribed_at": T0, "channel": "poster-7"}
                    for cid in ids[:3]
                ],
            )
            conn.execute(  # customer 6 shows customer 5's email, unverified: 0.60
                sa.insert(table(Identity)),
                {
                    "customer_id": ids[5],
                    "kind": "email_unverified",
                    "scope": "oW",
                    "value": "wang@example.com",
                }
                | {"platform": "mastodon", "source": "test", "created_at": T0},
            )
        code, out = scrm(runner, config_file, "merges", "suggest", "--json")
        assert code == 0, out
        found = {(s["customer_a"], s["customer_b"]): s for s in json.loads(out)}
        assert set(found) == {(ids[0], ids[1]), (ids[4], ids[5])}
        assert found[(ids[0], ids[1])]["score"] == pytest.approx(1 - 0.65 * 0.75)
        assert [c["clue"] for c in found[(ids[0], ids[1])]["evidence"]] == ["same_name", "same_channel"]
        assert found[(ids[4], ids[5])]["score"] == pytest.approx(0.6)
        code, out = scrm(runner, config_file, "merges", "suggest", "--json", "--min-score", "0.2")
        pairs = {(s["customer_a"], s["customer_b"]) for s in json.loads(out)}
        assert (ids[2], ids[3]) in pairs  # the handle alone, 0.30

        code, out = scrm(
            runner, config_file, "merge", str(ids[0]), str(ids[1]), "--reason", "called them", "--json"
        )
        assert code == 0, out
        merge_id = json.loads(out)["merge_id"]
        code, out = scrm(runner, config_file, "customer", str(ids[1]), "--json")
        record = json.loads(out)
        assert record["id"] == ids[0] and record["merged_from"] == ids[1]
        (merge,) = record["merges"]
        assert merge["undo"] == f"scrm unmerge {merge_id}"
        assert merge["evidence"]["by"] == "manual" and merge["evidence"]["reason"] == "called them"
        assert merge["evidence"]["suggestion"]["score"] == pytest.approx(0.5125)
        code, out = scrm(runner, config_file, "customer", str(ids[0]))
        assert f"scrm unmerge {merge_id}" in out and "called them" in out and "manual" in out

        code, out = scrm(runner, config_file, "unmerge", str(ids[1]), "--customer", "--json")
        assert code == 0 and json.loads(out)["restored_id"] == ids[1]
        code, out = scrm(runner, config_file, "unmerge", str(merge_id))
        assert code == 1 and "already undone" in out
        code, out = scrm(runner, config_file, "merges", "suggest", "--json")
        assert {(s["customer_a"], s["customer_b"]) for s in json.loads(out)} == {(ids[4], ids[5])}
    finally:
        store.close()


def test_same_name_in_the_same_group_is_suggested(store: Store) -> None:
    with store.connect() as conn:
        account_id = conn.execute(
            sa.insert(table(Account)).returning(table(Account).c.id),
            {"name": "corp", "platform": "wecom", "external_id": "ww1", "created_at": T0},
        ).scalar_one()
        a = one(conn, [("wecom_external", "ww1", "wmA")], "Zhao Min")
        b = one(conn, [("phone", "", "+8613900000000")], "zhao min")
        c = one(conn, [("phone", "", "+8613900000001")], "Zhao Min")  # same name, no group: 0.35
        group = conn.execute(
            sa.insert(table(CustomerGroup)).returning(table(CustomerGroup).c.id),
            {"account_id": account_id, "platform": "wecom", "external_id": "g1", "created_at": T0},
        ).scalar_one()
        conn.execute(
            sa.insert(table(GroupMembership)),
            [{"group_id": group, "customer_id": cid, "joined_at": T0} for cid in (a, b)],
        )
        assert compute_suggestions(conn) == 1
        (found,) = list_suggestions(conn)
    assert (found.customer_a, found.customer_b) == (a, b) and c not in (a, b)
    assert [e["clue"] for e in found.evidence] == ["same_name", "same_group"]
    assert found.score == pytest.approx(1 - 0.65 * 0.75)
