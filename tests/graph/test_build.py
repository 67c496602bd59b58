"""The relationship graph from arrays and from the store (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import networkx as nx
import numpy as np
import pytest
import sqlalchemy as sa

from graph.build import from_edges, load_graph
from scrm.errors import GraphError
from scrm.models import Customer, Interaction, Relation
from scrm.store import Store

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HALF_LIFE = 30.0
KINDS = {"referred_by": 2.0, "share_read": 1.0, "reply": 0.5, "mention": 0.25}


def test_from_edges_sums_duplicates_drops_self_loops_and_keeps_isolated_customers() -> None:
    g = from_edges([5, 3, 9, 7], [3, 3, 5, 9, 9], [5, 5, 3, 9, 3], [1.0, 2.0, 4.0, 8.0, 0.5])
    assert g.customer_ids.tolist() == [3, 5, 7, 9]
    edges = {
        (int(g.customer_ids[s]), int(g.customer_ids[d])): w
        for s, d, w in zip(g.src, g.dst, g.weight, strict=True)
    }
    assert edges == {(3, 5): 3.0, (5, 3): 4.0, (9, 3): 0.5}
    assert g.n_nodes == 4 and g.n_edges == 3
    ref = g.to_networkx()
    assert set(ref.nodes) == {3, 5, 7, 9}
    assert {(u, v): d["weight"] for u, v, d in ref.edges(data=True)} == edges
    csr = g.to_csr()
    assert csr[0, 1] == 3.0 and csr[1, 0] == 4.0 and csr.nnz == 3


@pytest.mark.parametrize(
    ("src", "dst", "weights", "message"),
    [
        ([1], [4], [1.0], "not customers"),
        ([1, 2], [2], None, "differ in length"),
        ([1], [2], [0.0], "positive"),
        ([1], [2], [float("nan")], "positive"),
    ],
)
def test_from_edges_refuses_bad_input(
    src: list[int], dst: list[int], weights: list[float] | None, message: str
) -> None:
    with pytest.raises(GraphError, match=message):
        from_edges([1, 2, 3], src, dst, weights)


def test_referral_cycles_are_cut_and_first_referrer_wins() -> None:
    # 2 -> 3 -> 4 -> 2 is a cycle (bad data); 5 is referred twice, by 1 first.
    g = from_edges(range(1, 7), [], [], referral=([2, 3, 4, 5, 5, 6], [3, 4, 2, 1, 6, 5]))
    parent = {
        int(g.customer_ids[i]): (int(g.customer_ids[p]) if p >= 0 else None)
        for i, p in enumerate(g.referral_parent)
    }
    assert parent == {1: None, 2: None, 3: 4, 4: 2, 5: 1, 6: 5}


def _customers(conn: sa.Connection, count: int) -> list[int]:
    ids = []
    for i in range(count):
        row = conn.execute(
            sa.insert(Customer).values(display_name=f"c{i}", created_at=NOW).returning(Customer.id)
        )
        ids.append(int(row.scalar_one()))
    return ids


def _interaction(
    conn: sa.Connection, n: int, kind: str, author: int, target: int | None, days_ago: float
) -> None:
    conn.execute(
        sa.insert(Interaction).values(
            platform="wechat",
            external_id=f"e{n}",
            kind=kind,
            customer_id=author,
            target_customer_id=target,
            occurred_at=NOW - timedelta(days=days_ago),
        )
    )


def test_load_graph_reads_directions_decay_and_skips_merged_customers(store: Store) -> None:
    with store.connect() as conn:
        a, b, c, d, merged, alone = _customers(conn, 6)
        conn.execute(sa.update(Customer).where(Customer.id == merged).values(merged_into_id=a))
        # b was referred by a 30 days ago (one half-life): edge b -> a, weight 2 * 0.5.
        conn.execute(
            sa.insert(Relation).values(
                kind="referred_by",
                source_id=b,
                target_id=a,
                first_at=NOW - timedelta(days=40),
                last_at=NOW - timedelta(days=30),
            )
        )
        # c read what a shared, today and 60 days ago: edge c -> a, weight 1 + 0.25.
        _interaction(conn, 1, "share_read", a, c, 0)
        _interaction(conn, 2, "share_read", a, c, 60)
        # d replied to b (edge d -> b, 0.5) and mentioned c in the future (age 0: 0.25).
        _interaction(conn, 3, "reply", d, b, 0)
        _interaction(conn, 4, "mention", d, c, -5)
        # Ignored: a kind without weight, an interaction without a target, anything touching `merged`.
        _interaction(conn, 5, "like", d, a, 0)
        _interaction(conn, 6, "reply", d, None, 0)
        _interaction(conn, 7, "reply", merged, b, 0)
        _interaction(conn, 8, "share_read", merged, d, 0)
        conn.execute(
            sa.insert(Relation).values(
                kind="referred_by", source_id=merged, target_id=c, first_at=NOW, last_at=NOW
            )
        )
    with store.connect() as conn:
        g = load_graph(conn, now=NOW, half_life_days=HALF_LIFE, kind_weights=KINDS)
    assert g.customer_ids.tolist() == sorted([a, b, c, d, alone])
    edges = {
        (int(g.customer_ids[s]), int(g.customer_ids[t])): float(w)
        for s, t, w in zip(g.src, g.dst, g.weight, strict=True)
    }
    assert edges.keys() == {(b, a), (c, a), (d, b), (d, c)}
    assert edges[(b, a)] == pytest.approx(2.0 * 0.5)
    assert edges[(c, a)] == pytest.approx(1.0 + 0.25)
    assert edges[(d, b)] == pytest.approx(0.5)
    assert edges[(d, c)] == pytest.approx(0.25)
    parent = g.referral_parent[g.index_of([b])[0]]
    assert g.customer_ids[parent] == a
    assert (g.referral_parent >= 0).sum() == 1


def test_load_graph_kind_weights_and_half_life(store: Store) -> None:
    with store.connect() as conn:
        a, b = _customers(conn, 2)
        _interaction(conn, 1, "reply", a, b, 10)
    with store.connect() as conn:
        half = load_graph(conn, now=NOW, half_life_days=10, kind_weights={"reply": 3.0})
        none = load_graph(conn, now=NOW, half_life_days=10, kind_weights={"reply": 0.0})
        with pytest.raises(GraphError, match="timezone"):
            load_graph(conn, now=NOW.replace(tzinfo=None), half_life_days=10, kind_weights={})
    assert half.weight.tolist() == pytest.approx([1.5])
    assert none.n_edges == 0 and none.n_nodes == 2


def test_random_graph_matches_networkx_built_edge_by_edge() -> None:
    rng = np.random.default_rng(3)
    src, dst, w = rng.integers(0, 50, 300), rng.integers(0, 50, 300), rng.random(300) + 0.1
    g = from_edges(np.arange(60), src, dst, w)
    ref = nx.DiGraph()
    ref.add_nodes_from(range(60))
    for u, v, weight in zip(src.tolist(), dst.tolist(), w.tolist(), strict=True):
        if u != v:
            ref.add_edge(u, v, weight=ref.get_edge_data(u, v, {"weight": 0.0})["weight"] + weight)
    ours = g.to_networkx()
    assert set(ours.nodes) == set(ref.nodes)
    assert set(ours.edges) == set(ref.edges)
    for u, v, data in ref.edges(data=True):
        assert ours[u][v]["weight"] == pytest.approx(data["weight"])
