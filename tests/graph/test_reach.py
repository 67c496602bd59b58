"""Reach against brute force with networkx; sketch error on a bigger graph; referral subtrees."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from graph.build import SocialGraph, from_edges
from graph.reach import hll_estimate, reach, referral_reach
from scrm.errors import GraphError


def random_graph(n: int, m: int, seed: int) -> SocialGraph:
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n, m)
    dst = (rng.pareto(1.2, m) * n / 30).astype(np.int64) % n  # heavy-tailed audiences
    return from_edges(np.arange(n), src, dst)


def brute_force(graph: SocialGraph) -> tuple[list[int], list[int]]:
    upstream = graph.to_networkx().reverse(copy=True)
    direct, two_hop = [], []
    for node in graph.customer_ids.tolist():
        within = nx.single_source_shortest_path_length(upstream, node, cutoff=2)
        direct.append(sum(1 for d in within.values() if d == 1))
        two_hop.append(len(within) - 1)
    return direct, two_hop


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_reach_matches_brute_force(seed: int) -> None:
    g = random_graph(400, 2000, seed)
    direct, two_hop = reach(g)
    ref_direct, ref_two_hop = brute_force(g)
    assert direct.tolist() == ref_direct
    assert two_hop.tolist() == ref_two_hop


def test_cycles_do_not_count_a_customer_in_their_own_audience() -> None:
    g = from_edges([1, 2, 3], [1, 2, 3], [2, 3, 1])  # 1 -> 2 -> 3 -> 1
    direct, two_hop = reach(g)
    assert direct.tolist() == [1, 1, 1]
    assert two_hop.tolist() == [2, 2, 2]
    direct, sketched = reach(g, exact_limit=0, exact_path_limit=0)
    assert sketched.tolist() == [2, 2, 2]


def test_sketch_estimates_within_the_stated_error() -> None:
    g = random_graph(20_000, 120_000, seed=5)
    direct, exact = reach(g)
    direct_s, estimate = reach(g, exact_limit=0, exact_path_limit=0, seed=1, registers=128)
    assert direct_s.tolist() == direct.tolist()  # the direct audience is always exact
    big = exact >= 50
    assert big.sum() > 1000
    rel = np.abs(estimate[big] - exact[big]) / exact[big]
    stated = 1.04 / np.sqrt(128)  # HyperLogLog's relative standard error
    assert np.sqrt(np.mean(rel**2)) < 1.2 * stated
    assert np.mean(rel > 3 * stated) < 0.01
    small = exact < 50
    assert np.abs(estimate[small] - exact[small]).mean() < 1.0  # linear counting is near exact


def test_sketch_is_reproducible_for_a_seed() -> None:
    g = random_graph(3000, 15000, seed=2)
    a = reach(g, exact_limit=0, exact_path_limit=0, seed=9)[1]
    assert reach(g, exact_limit=0, exact_path_limit=0, seed=9)[1].tolist() == a.tolist()


def test_above_exact_limit_the_cheapest_audiences_stay_exact() -> None:
    g = random_graph(5000, 30000, seed=8)
    _, exact = reach(g)
    _, mixed = reach(g, exact_limit=0, exact_path_limit=40_000)
    same = mixed == exact
    assert 0.5 < same.mean() < 1.0
    # The estimated ones are the widest audiences.
    assert exact[~same].min() >= np.median(exact)
    rel = np.abs(mixed[~same] - exact[~same]) / exact[~same]
    assert rel.mean() < 2 * 1.04 / np.sqrt(128)


def test_hll_estimate_of_known_sets() -> None:
    rng = np.random.default_rng(0)
    m, size = 256, 100_000
    rows = np.zeros((1, m), dtype=np.uint8)
    np.maximum.at(rows[0], rng.integers(0, m, size), rng.geometric(0.5, size).astype(np.uint8))
    assert hll_estimate(rows)[0] == pytest.approx(size, rel=3 * 1.04 / np.sqrt(m))
    with pytest.raises(GraphError, match="power of two"):
        reach(random_graph(10, 20, 0), registers=100)


def test_referral_reach_matches_networkx_descendants() -> None:
    rng = np.random.default_rng(4)
    n = 3000
    children = np.arange(1, n)
    referrers = (rng.random(n - 1) * children).astype(np.int64)  # a random forest, deep and wide
    referred = rng.random(n - 1) < 0.9
    g = from_edges(np.arange(n), [], [], referral=(children[referred], referrers[referred]))
    tree = nx.DiGraph()
    tree.add_nodes_from(range(n))
    tree.add_edges_from(zip(referrers[referred].tolist(), children[referred].tolist(), strict=True))
    expected = [len(nx.descendants(tree, v)) for v in range(n)]
    assert referral_reach(g).tolist() == expected


def test_referral_reach_of_a_long_chain_and_a_cycle_in_the_data() -> None:
    n = 5000
    chain = from_edges(np.arange(n), [], [], referral=(np.arange(1, n), np.arange(n - 1)))
    assert referral_reach(chain).tolist() == list(range(n - 1, -1, -1))
    cyclic = from_edges([1, 2, 3, 4], [], [], referral=([1, 2, 3, 4], [2, 3, 1, 1]))
    # The cycle 1 -> 2 -> 3 -> 1 is cut at customer 1, who becomes the root of everyone.
    assert referral_reach(cyclic).tolist() == [3, 0, 1, 0]
