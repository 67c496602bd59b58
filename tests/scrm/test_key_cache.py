"""The key cache of bulk loads: the same customers as resolving without it, whoever else writes meanwhile."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Connection

from scrm import key_cache
from scrm.identity import KeyTuple, resolve
from scrm.key_cache import KeyCache
from scrm.store import Store

SCOPE = "wx00000000cache1"
A1, A2, A3 = (("openid", SCOPE, f"o-{n}") for n in (1, 2, 3))
UNION: KeyTuple = ("unionid", "", "u-1")


def _alone(store: Store, key: KeyTuple) -> int:
    """The customer of ``key`` resolved in its own transaction, without a cache."""
    with store.connect() as conn:
        return resolve(conn, [[key]], source="test").customer_ids[0]


def test_cache_resolves_like_the_store_while_another_connection_writes(store: Store) -> None:
    c1, c2 = _alone(store, A1), _alone(store, UNION)
    with store.bulk() as conn:
        with conn.begin():
            cache = KeyCache.start(conn, ("openid", SCOPE), [("unionid", "")])
        if store.dialect == "sqlite":
            assert cache is not None
            assert cache.ids == {A1: c1}  # the account's keys, loaded once
            assert cache.complete == {("openid", SCOPE)}  # a unionid is stored: that group must be asked
        else:
            assert cache is None  # no data_version on PostgreSQL: every batch looks up
        with conn.begin():
            first = resolve(conn, [[A1], [A2]], source="test", cache=cache)
        assert first.customer_ids[0] == c1 and first.created_ids == [first.customer_ids[1]]
        c_a2 = first.customer_ids[1]

        c3 = _alone(store, A3)  # another connection commits a key of the complete group
        with conn.begin():
            second = resolve(conn, [[A3], [A2]], source="test", cache=cache)
        assert second.customer_ids == [c3, c_a2] and second.created_ids == []

        with conn.begin():  # one record carries the keys of two customers: they are merged
            third = resolve(conn, [[A1, UNION]], source="test", cache=cache)
        assert [(m.kept_id, m.merged_id) for m in third.merges] == [(c1, c2)]
        if cache is not None:
            assert cache.ids == {} and cache.complete == set()  # forgotten: ids moved
        with conn.begin():
            fourth = resolve(conn, [[UNION], [A2], [A3]], source="test", cache=cache)
        assert fourth.customer_ids == [c1, c_a2, c3]

    # the same answers from the store itself
    assert [_alone(store, key) for key in (A1, A2, A3, UNION)] == [c1, c_a2, c3, c1]


def _sqlite_cache(store: Store, conn: Connection) -> KeyCache:
    """A sync's cache (SQLite only: on PostgreSQL the first test shows there is none)."""
    if store.dialect != "sqlite":
        pytest.skip("the key cache works on SQLite only")
    with conn.begin():
        cache = KeyCache.start(conn, ("openid", SCOPE), [("unionid", "")])
    assert cache is not None
    return cache


def test_groups_empty_at_the_start_are_complete_and_learnt(store: Store) -> None:
    with store.bulk() as conn:
        cache = _sqlite_cache(store, conn)
        assert cache.ids == {} and cache.complete == {("openid", SCOPE), ("unionid", "")}
        with conn.begin():
            made = resolve(conn, [[A1, UNION], [A2]], source="test", cache=cache)
        assert made.customers_created == 2
        assert cache.ids == {A1: made.customer_ids[0], UNION: made.customer_ids[0], A2: made.customer_ids[1]}
        with conn.begin():
            again = resolve(conn, [[UNION], [A2]], source="test", cache=cache)
        assert again.customer_ids == [made.customer_ids[0], made.customer_ids[1]] and again.created_ids == []
    assert [_alone(store, key) for key in (UNION, A2)] == again.customer_ids


def test_a_cache_past_its_size_forgets_and_still_resolves(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(key_cache, "MAX_KEYS", 2)
    c1 = _alone(store, A1)
    with store.bulk() as conn:
        cache = _sqlite_cache(store, conn)
        with conn.begin():
            made = resolve(conn, [[A2, UNION]], source="test", cache=cache)  # 1 + 2 keys > 2: forgotten
        assert cache.ids == {} and cache.complete == set()
        with conn.begin():
            again = resolve(conn, [[A1], [UNION], [A3]], source="test", cache=cache)
        assert again.customer_ids[:2] == [c1, made.customer_ids[0]] and again.customers_created == 1
        with conn.begin():  # three keys in the account now, more than a cache may hold: none
            assert KeyCache.start(conn, ("openid", SCOPE)) is None


def test_a_group_is_told_only_while_the_cache_holds_all_of_it(store: Store) -> None:
    c1 = _alone(store, A1)
    with store.bulk() as conn:
        cache = _sqlite_cache(store, conn)
        with conn.begin():
            made = resolve(conn, [[A2, UNION]], source="test", cache=cache)
            assert cache.group(conn, ("openid", SCOPE)) == {"o-1": c1, "o-2": made.customer_ids[0]}
            assert cache.group(conn, ("unionid", "")) == {"u-1": made.customer_ids[0]}  # empty at the start
            assert cache.group(conn, ("phone", "")) is None  # never loaded: not held
        c3 = _alone(store, A3)  # another connection commits: the cache cannot tell any more
        with conn.begin():
            assert cache.group(conn, ("openid", SCOPE)) is None
            assert resolve(conn, [[A3]], source="test", cache=cache).customer_ids == [c3]
