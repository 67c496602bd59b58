"""Reach: how many customers pay attention to someone, directly and through one intermediary.

A customer's *direct audience* is the set of distinct customers with an edge to them (who read their
shares, reply to them, were referred by them); the *two-hop audience* adds those who pay attention to
that audience. Direct audiences are always counted exactly.

Two-hop audiences are counted exactly by a sparse matrix product, row block by row block, whose cost is
the number of two-step paths into each customer. Up to ``exact_limit`` customers every count is exact.
Above it, the customers whose audiences are cheapest to enumerate are counted exactly until
``exact_path_limit`` paths have been spent, and the rest (the widest audiences, where a few percent do not
change a ranking) are estimated with HyperLogLog sketches (Flajolet et al. 2007) propagated along the
edges (Cohen 1997): relative standard error ``1.04 / sqrt(registers)``, 9 % with the default 128.

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
_CHUNK_PATHS = 8_000_000  # two-step paths per block of the exact product
_CHUNK_BYTES = 64 << 20  # gathered sketch registers per block


def _audience_matrix(graph: SocialGraph) -> sp.csr_array:
    """``B + I`` with ``B[v, u] = 1`` when ``u -> v``: row v lists v and its direct audience."""
    n = graph.n_nodes
    rows = np.concatenate((graph.dst, np.arange(n, dtype=np.int32)))
    cols = np.concatenate((graph.src, np.arange(n, dtype=np.int32)))
    b = sp.csr_array((np.ones(rows.shape[0], dtype=bool), (rows, cols)), shape=(n, n))
    b.sum_duplicates()
    return b


def _exact_rows(b: sp.csr_array, rows: npt.NDArray[np.intp], paths: Int64Array) -> Int64Array:
    """Exact two-hop counts of ``rows``: non-zeros of ``(B + I)^2`` per row, minus the customer."""
    out = np.zeros(rows.shape[0], dtype=np.int64)
    cum = np.cumsum(paths[rows])
    lo = 0
    while lo < rows.shape[0]:
        done = int(cum[lo - 1]) if lo else 0
        hi = max(int(np.searchsorted(cum, done + _CHUNK_PATHS, side="right")), lo + 1)
        block = b[rows[lo:hi]] @ b  # boolean: no counts that could overflow, only the pattern
        out[lo:hi] = np.diff(block.indptr) - 1
        lo = hi
    return out


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
    inverse_powers = np.exp2(-np.arange(256, dtype=np.float64))
    raw = alpha * m * m / inverse_powers[registers].sum(axis=1)
    zeros = (registers == 0).sum(axis=1)
    small = (raw <= 2.5 * m) & (zeros > 0)
    est = raw.copy()
    est[small] = m * np.log(m / zeros[small])
    result: FloatArray = est
    return result


def _sketch_rows(graph: SocialGraph, rows: npt.NDArray[np.intp], registers: int, seed: int) -> Int64Array:
    """HyperLogLog estimates of the two-hop audiences of ``rows``."""
    n, m = graph.n_nodes, registers
    rng = np.random.default_rng(seed)
    # Each customer is one random hash: a register and a geometric rank (the HLL "leading zeros + 1").
    slot = rng.integers(0, m, n)
    rank = np.minimum(rng.geometric(0.5, n), 255).astype(np.uint8)
    one = np.zeros((n, m), dtype=np.uint8)
    one[np.arange(n), slot] = rank  # the customer themself
    np.maximum.at(one, (graph.dst, slot[graph.src]), rank[graph.src])  # + direct audience
    two = one[rows]
    wanted = np.zeros(n, dtype=bool)
    wanted[rows] = True
    keep = wanted[graph.dst]
    dst, src = graph.dst[keep], graph.src[keep]
    order = np.argsort(dst, kind="stable")
    dst, src = dst[order], src[order]
    where = np.searchsorted(rows, dst)  # rows is sorted
    step = max(1, _CHUNK_BYTES // m)
    lo = 0
    while lo < dst.shape[0]:
        hi = min(lo + step, dst.shape[0])
        if hi < dst.shape[0]:  # end the block at a change of destination
            hi = int(np.searchsorted(dst, dst[hi - 1], side="right"))
        block = dst[lo:hi]
        starts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]])
        merged = np.maximum.reduceat(one[src[lo:hi]], starts, axis=0)
        targets = where[lo:hi][starts]
        two[targets] = np.maximum(two[targets], merged)
        lo = hi
    est = hll_estimate(two) - 1.0  # the sketch counts the customer themself
    direct = np.bincount(graph.dst, minlength=n)[rows]
    return np.maximum(np.rint(est), direct).astype(np.int64)


def reach(
    graph: SocialGraph,
    *,
    exact_limit: int = 200_000,
    seed: int = 0,
    registers: int = 128,
    exact_path_limit: int = 300_000_000,
) -> tuple[Int64Array, Int64Array]:
    """Direct and two-hop audience of each customer.

    Parameters
    ----------
    graph
        The relationship graph; ``u -> v`` puts u in v's audience.
    exact_limit
        Up to this many customers every two-hop audience is counted exactly.
    seed
        Seed of the sketches' random hashes.
    registers
        HyperLogLog registers per estimated customer (a power of two, 16 to 4096); the relative standard
        error is ``1.04 / sqrt(registers)``.
    exact_path_limit
        Above ``exact_limit`` customers: how many two-step paths to spend on exact counts (about 5 s per
        100 million on one core), cheapest customers first; the others are estimated.

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
    n = graph.n_nodes
    direct = np.bincount(graph.dst, minlength=n).astype(np.int64)
    b = _audience_matrix(graph)
    paths = (b @ (direct + 1)).astype(np.int64)  # two-step paths (with the trivial steps) into each row
    if n <= exact_limit:
        exact = np.arange(n)
    else:
        cheapest = np.argsort(paths, kind="stable")
        exact = np.sort(cheapest[np.cumsum(paths[cheapest]) <= exact_path_limit])
    two_hop = np.zeros(n, dtype=np.int64)
    two_hop[exact] = _exact_rows(b, exact, paths)
    if exact.shape[0] < n:
        rest = np.setdiff1d(np.arange(n), exact, assume_unique=True)
        two_hop[rest] = _sketch_rows(graph, rest, registers, seed)
    return direct, two_hop


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
