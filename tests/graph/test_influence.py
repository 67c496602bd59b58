"""PageRank against networkx's reference, and converged where networkx's stop rule is not."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from graph.build import SocialGraph, from_edges
from graph.engine import available_engines
from graph.influence import pagerank, pagerank_residual
from scrm.errors import GraphError, NotConverged

DATA = Path(__file__).resolve().parents[1] / "data" / "graphs"


def karate() -> SocialGraph:
    """Zachary's karate club with Zachary's weights, each tie in both directions."""
    rows = np.loadtxt(DATA / "karate_edges.tsv", comments="#", skiprows=2, dtype=np.int64)
    src = np.concatenate((rows[:, 0], rows[:, 1]))
    dst = np.concatenate((rows[:, 1], rows[:, 0]))
    weight = np.concatenate((rows[:, 2], rows[:, 2])).astype(np.float64)
    return from_edges(np.arange(34), src, dst, weight)


def random_directed(n: int, m: int, seed: int) -> SocialGraph:
    """Random directed graph where a fifth of the customers pay attention to nobody (dangling)."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, int(n * 0.8), m)
    dst = (rng.pareto(1.5, m) * n / 20).astype(np.int64) % n
    return from_edges(np.arange(n), src, dst, rng.exponential(1.0, m) + 0.01)


def as_array(graph: SocialGraph, scores: dict[int, float]) -> np.ndarray:
    return np.array([scores[c] for c in graph.customer_ids.tolist()])


def test_karate_weighted_matches_networkx() -> None:
    g = karate()
    ref = nx.pagerank(g.to_networkx(), alpha=0.85, tol=1e-12, weight="weight")
    pr = pagerank(g)
    assert pr.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(pr, as_array(g, ref), rtol=0, atol=1e-8)
    # The club's instructor (0) and administrator (33) are its most influential members.
    assert set(np.argsort(-pr)[:2].tolist()) == {0, 33}


@pytest.mark.parametrize("alpha", [0.5, 0.85, 0.95])
def test_random_directed_graph_with_dangling_nodes_matches_networkx(alpha: float) -> None:
    g = random_directed(2000, 10000, seed=7)
    assert (np.bincount(g.src, minlength=g.n_nodes) == 0).sum() >= 400
    ref = nx.pagerank(g.to_networkx(), alpha=alpha, tol=1e-13, weight="weight", max_iter=10_000)
    np.testing.assert_allclose(pagerank(g, alpha=alpha, tol=1e-12), as_array(g, ref), rtol=0, atol=1e-8)


@pytest.mark.parametrize("engine", [e for e in available_engines() if e in ("scipy", "igraph", "networkx")])
def test_every_engine_gives_the_same_converged_scores(engine: str) -> None:
    g = random_directed(3000, 15000, seed=11)
    scores = pagerank(g, engine=engine)
    assert pagerank_residual(g, scores) < 1e-9
    np.testing.assert_allclose(scores, pagerank(g, engine="scipy"), rtol=0, atol=1e-9)


def test_networkx_tolerance_trap_does_not_affect_ours() -> None:
    n = 20_000
    g = random_directed(n, 100_000, seed=3)
    reference = g.to_networkx()
    # networkx stops when the L1 change is below N * tol = 0.02 here: after a handful of iterations.
    early = as_array(g, nx.pagerank(reference, alpha=0.85, tol=1e-6, weight="weight"))
    ours = pagerank(g, tol=1e-10)
    assert pagerank_residual(g, early) > 1e-4
    assert pagerank_residual(g, ours) < 1e-8
    assert np.abs(early - ours).sum() > 1e-3
    # Asked for the same absolute precision, networkx agrees with us.
    exact = as_array(g, nx.pagerank(reference, alpha=0.85, tol=1e-10 / n, weight="weight"))
    np.testing.assert_allclose(ours, exact, rtol=0, atol=1e-9)


def test_not_converged_and_bad_parameters_raise() -> None:
    g = random_directed(500, 2000, seed=1)
    with pytest.raises(NotConverged, match="did not converge in 3 iterations"):
        pagerank(g, max_iter=3)
    with pytest.raises(GraphError, match="alpha"):
        pagerank(g, alpha=1.0)
    with pytest.raises(GraphError, match="engine 'networkit' does not run pagerank"):
        pagerank(g, engine="networkit")


def test_graph_without_edges_is_uniform_and_empty_graph_is_empty() -> None:
    np.testing.assert_allclose(pagerank(from_edges([1, 2, 3, 4], [], [])), [0.25] * 4)
    assert pagerank(from_edges([], [], [])).shape == (0,)


def test_warm_start_gives_the_same_scores() -> None:
    g = random_directed(3000, 15000, seed=4)
    cold = pagerank(g)
    rng = np.random.default_rng(0)
    warm = pagerank(g, start=cold * rng.uniform(0.9, 1.1, g.n_nodes))
    np.testing.assert_allclose(warm, cold, rtol=0, atol=1e-9)
    with pytest.raises(GraphError, match="start must hold"):
        pagerank(g, start=np.zeros(g.n_nodes))
