"""Reach: how many customers pay attention to someone, directly and through one intermediary.

A customer's *direct audience* is the set of distinct customers with an edge to them (who read their
shares, reply to them, were referred by them); the *two-hop audience* adds those who pay attention to
that audience. Direct audiences are always counted exactly. Two-hop audiences are exact up to
``exact_limit`` customers (a sparse matrix product); above it they are estimated with HyperLogLog
sketches (Flajolet et al. 2007), whose relative standard error is ``1.04 / sqrt(registers)`` (9 % with
the default 128 registers), at a cost of ``registers`` bytes per customer and per edge pass.

The *referral reach* of a customer is the size of the referral tree they started: everyone referred by
them, by those, and so on.
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from graph.build import SocialGraph
from scrm.errors import GraphError

__all__ = ["hll_estimate", "reach", "referral_reach"]

Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
_CHUNK_BYTES = 64 << 20  # gathered sketch rows per chunk


def _exact_two_hop(graph: SocialGraph) -> Int64Array:
    n = graph.n_nodes
    # B[v, u] = 1 when u -> v: row v lists v's direct audience.
    b = sp.csr_array((np.ones(graph.n_edges, dtype=np.int32), (graph.dst, graph.src)), shape=(n, n))
    both = (b @ b + b).tocsr()
    both.sum_duplicates()
    counts: Int64Array = np.diff(both.indptr).astype(np.int64)
    counts -= (both.diagonal() > 0).astype(np.int64)  # a customer is not in their own audience
    return counts


def hll_estimate(registers: npt.NDArray[np.uint8]) -> FloatArray:
    """HyperLogLog cardinality estimates, one per row of ``registers`` (with small-range correction).

    Examples
    --------
    >>> rows = np.zeros((2, 64), dtype=np.uint8)
    >>> rows[1, :8] = 1
    >>> [round(float(v), 2) for v in hll_estimate(rows)]
    [0.0, 8.55]

    References
    ----------
    .. [1] P. Flajolet, É. Fusy, O. Gandouet and F. Meunier, "HyperLogLog: the analysis of a near-optimal
       cardinality estimation algorithm", AofA 2007, DMTCS proceedings, pp. 137-156.
    """
    m = registers.shape[1]
    alpha = {16: 0.673, 32: 0.697, 64: 0.709}.get(m, 0.7213 / (1.0 + 1.079 / m))
    raw = alpha * m * m / np.exp2(-registers.astype(np.float64)).sum(axis=1)
    zeros = (registers == 0).sum(axis=1)
    small = (raw <= 2.5 * m) & (zeros > 0)
    est = raw.copy()
    est[small] = m * np.log(m / zeros[small])
    result: FloatArray = est
    return result


def _sketch_two_hop(graph: SocialGraph, registers: int, seed: int) -> Int64Array:
    n, m = graph.n_nodes, registers
    rng = np.random.default_rng(seed)
    # Each customer is one random hash: a register and a geometric rank (the HLL "leading zeros + 1").
    slot = rng.integers(0, m, n)
    rank = np.minimum(rng.geometric(0.5, n), 255).astype(np.uint8)
    one = np.zeros((n, m), dtype=np.uint8)
    one[np.arange(n), slot] = rank  # the customer themself
    np.maximum.at(one, (graph.dst, slot[graph.src]), rank[graph.src])  # + direct audience
    two = one.copy()
    order = np.argsort(graph.dst, kind="stable")
    dst_sorted, src_sorted = graph.dst[order], graph.src[order]
    step = max(1, _CHUNK_BYTES // m)
    lo = 0
    while lo < dst_sorted.shape[0]:
        hi = min(lo + step, dst_sorted.shape[0])
        if hi < dst_sorted.shape[0]:  # end the chunk at a change of destination
            hi = int(np.searchsorted(dst_sorted, dst_sorted[hi - 1], side="right"))
        dsts = dst_sorted[lo:hi]
        starts = np.flatnonzero(np.r_[True, dsts[1:] != dsts[:-1]])
        merged = np.maximum.reduceat(one[src_sorted[lo:hi]], starts, axis=0)
        targets = dsts[starts]
        two[targets] = np.maximum(two[targets], merged)
        lo = hi
    est = hll_estimate(two) - 1.0  # the sketch counts the customer themself
    direct = np.bincount(graph.dst, minlength=n)
    return np.maximum(np.rint(est), direct).astype(np.int64)


def reach(
    graph: SocialGraph,
    *,
    exact_limit: int = 200_000,
    seed: int = 0,
    registers: int = 128,
    exact_path_limit: int = 50_000_000,
) -> tuple[Int64Array, Int64Array]:
    """Direct and two-hop audience of each customer.

    Parameters
    ----------
    graph
        The relationship graph; ``u -> v`` puts u in v's audience.
    exact_limit
        Count two-hop audiences exactly up to this many customers; estimate them above.
    seed
        Seed of the sketches' random hashes.
    registers
        HyperLogLog registers per customer (a power of two, 16 to 4096); the relative standard error is
        ``1.04 / sqrt(registers)``.
    exact_path_limit
        Also estimate when the graph has more two-step paths than this (the exact product's memory).

    Returns
    -------
    direct, two_hop : numpy.ndarray
        int64 per node: distinct customers with an edge to it, and distinct customers within two steps
        upstream (the direct audience included, the customer themself excluded). An estimate is never
        below the exact direct audience.

    Examples
    --------
    Customers 1 and 2 follow 3, who follows 4:

    >>> from graph.build import from_edges
    >>> direct, two_hop = reach(from_edges([1, 2, 3, 4], [1, 2, 3], [3, 3, 4]))
    >>> direct.tolist(), two_hop.tolist()
    ([0, 0, 2, 1], [0, 0, 2, 3])

    References
    ----------
    .. [1] P. Flajolet, É. Fusy, O. Gandouet and F. Meunier, "HyperLogLog: the analysis of a near-optimal
       cardinality estimation algorithm", AofA 2007.
    .. [2] E. Cohen, "Size-estimation framework with applications to transitive closure and
       reachability", Journal of Computer and System Sciences 55(3), 1997 (neighbourhood sizes by
       propagating sketches along edges).
    """
    if registers < 16 or registers > 4096 or registers & (registers - 1):
        raise GraphError(f"registers must be a power of two from 16 to 4096, not {registers}")
    direct = np.bincount(graph.dst, minlength=graph.n_nodes).astype(np.int64)
    indeg = direct
    outdeg = np.bincount(graph.src, minlength=graph.n_nodes).astype(np.int64)
    paths = int((indeg * outdeg).sum())
    if graph.n_nodes <= exact_limit and paths <= exact_path_limit:
        return direct, _exact_two_hop(graph)
    return direct, _sketch_two_hop(graph, registers, seed)


def referral_reach(graph: SocialGraph) -> Int64Array:
    """Size of the referral subtree each customer started (everyone referred by them, transitively).

    Examples
    --------
    1 referred 2 and 3; 3 referred 4:

    >>> from graph.build import from_edges
    >>> g = from_edges([1, 2, 3, 4], [], [], referral=([2, 3, 4], [1, 1, 3]))
    >>> referral_reach(g).tolist()
    [3, 0, 1, 0]
    """
    parent = graph.referral_parent.astype(np.int64)
    n = parent.shape[0]
    # Depth by pointer jumping (list ranking): log2 of the deepest chain rounds, then accumulate the
    # subtree sizes level by level from the deepest one.
    anc = parent.copy()
    depth = (parent >= 0).astype(np.int64)
    rounds = 0
    while (anc >= 0).any():
        rounds += 1
        if 2**rounds > 2 * n + 2:
            raise GraphError("referral_parent has a cycle; build the graph with from_edges or load_graph")
        has = anc >= 0
        up = anc[has]
        depth[has] += depth[up]
        nxt = np.full(n, -1, dtype=np.int64)
        nxt[has] = anc[up]
        anc = nxt
    size = np.zeros(n, dtype=np.int64)
    by_depth = np.argsort(-depth, kind="stable")
    bounds = np.searchsorted(-depth[by_depth], np.arange(-int(depth.max(initial=0)), 1))
    for lo, hi in itertools.pairwise(bounds.tolist()):
        level = by_depth[lo:hi]
        level = level[parent[level] >= 0]
        np.add.at(size, parent[level], size[level] + 1)
    return size
