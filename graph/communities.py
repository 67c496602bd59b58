"""Communities: who belongs together, who leads each group, who connects groups.

Detection runs Leiden (Traag et al. 2019) or Louvain (Blondel et al. 2008) maximising modularity on the
undirected weighted collapse of the graph (``w(u, v) = w(u -> v) + w(v -> u)``), seeded. Customers
without any tie get no community (label ``-1``): a community of one says nothing. Communities are
numbered by size, largest first; :func:`stabilize_labels` then carries the ids of the previous scoring
run over to the communities that are still (mostly) the same people.

Leaders are the most influential members of each community. Bridges are customers whose ties spread
over several communities: their *participation coefficient* (Guimerà & Amaral 2005)
``P_i = 1 - sum_c (k_ic / k_i) ** 2`` (``k_ic``: tie weight of i into community c, ``k_i``: all of i's tie
weight) is at least ``bridge_threshold`` (default 0.5: at least half of the tie weight leaves the own
community, or it is spread evenly over two or more).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from graph.build import SocialGraph
from graph.engine import choose_engine, to_igraph, to_networkit
from scrm.errors import GraphError

__all__ = ["Communities", "community_roles", "detect_communities", "modularity", "stabilize_labels"]

Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Communities:
    """Communities of a graph with their leaders and bridges.

    Attributes
    ----------
    labels
        int64 community id per node; -1 for customers without ties.
    modularity
        Modularity of the partition on the undirected collapse.
    leaders
        community id -> node indices of its most influential members, highest first.
    bridges
        bool per node: ``bridge_score >= bridge_threshold``.
    bridge_score
        float per node: participation coefficient in [0, 1) (0 for customers without ties).
    """

    labels: Int64Array
    modularity: float
    leaders: dict[int, list[int]]
    bridges: npt.NDArray[np.bool_]
    bridge_score: FloatArray


def _strength_and_pairs(graph: SocialGraph) -> tuple[FloatArray, sp.coo_array]:
    und = graph.undirected()
    n = graph.n_nodes
    strength = np.bincount(und.row, weights=und.data, minlength=n).astype(np.float64)
    strength += np.bincount(und.col, weights=und.data, minlength=n)
    return strength, und


def modularity(graph: SocialGraph, labels: npt.ArrayLike, *, resolution: float = 1.0) -> float:
    """Newman's modularity of ``labels`` on the undirected weighted collapse of ``graph``.

    ``Q = sum_c [ W_c / W - resolution * (S_c / 2W) ** 2 ]`` with ``W`` the total tie weight, ``W_c`` the
    weight inside community c and ``S_c`` the summed strength of its members. Nodes labelled -1 must have
    no ties.

    Examples
    --------
    Two triangles joined by one tie:

    >>> from graph.build import from_edges
    >>> g = from_edges(range(6), [0, 1, 2, 3, 4, 5, 2], [1, 2, 0, 4, 5, 3, 3])
    >>> round(modularity(g, [0, 0, 0, 1, 1, 1]), 4)
    0.3571
    """
    lab = np.asarray(labels, dtype=np.int64)
    strength, und = _strength_and_pairs(graph)
    total = float(und.data.sum())
    if total == 0:
        return 0.0
    if (lab[strength > 0] < 0).any():
        raise GraphError("a customer with ties has no community label")
    k = int(lab.max(initial=-1)) + 1
    inside = lab[und.row] == lab[und.col]
    w_in = np.bincount(lab[und.row][inside], weights=und.data[inside], minlength=k)
    tied = lab >= 0
    s_c = np.bincount(lab[tied], weights=strength[tied], minlength=k)
    return float(w_in.sum() / total - resolution * ((s_c / (2.0 * total)) ** 2).sum())


def _renumber_by_size(raw: npt.ArrayLike, tied: npt.NDArray[np.bool_]) -> Int64Array:
    """Labels 0..k-1 by decreasing size (ties: smallest first member); -1 for untied nodes."""
    lab = np.asarray(raw, dtype=np.int64)
    out = np.full(lab.shape[0], -1, dtype=np.int64)
    if not tied.any():
        return out
    uniq, first, inverse, counts = np.unique(
        lab[tied], return_index=True, return_inverse=True, return_counts=True
    )
    order = np.lexsort((first, -counts))
    rank = np.empty(uniq.shape[0], dtype=np.int64)
    rank[order] = np.arange(uniq.shape[0])
    out[tied] = rank[inverse]
    return out


def detect_communities(
    graph: SocialGraph,
    *,
    seed: int = 42,
    resolution: float = 1.0,
    method: str = "leiden",
    engine: str = "auto",
    n_iterations: int = 2,
    threads: int = 1,
    sweeps: int = 4,
) -> tuple[Int64Array, float]:
    """Find communities maximising modularity, reproducibly for a given seed.

    Parameters
    ----------
    graph
        The relationship graph (taken undirected, weights summed both ways).
    seed
        Seed of the algorithm's random order; the same seed and graph give the same labels.
    resolution
        Modularity resolution: above 1 gives more, smaller communities.
    method
        ``"leiden"`` or ``"louvain"``.
    engine
        ``"networkit"`` (PLM, Staudt & Meyerhenke 2016: Louvain, with its refinement phase for
        ``"leiden"``), ``"igraph"`` (Leiden or Louvain) or ``"networkx"`` (Louvain only; the
        reference). ``"auto"`` takes networkit when installed, else igraph.
    n_iterations
        Leiden iterations on igraph (each may improve the partition; negative: until stable).
    threads
        Threads for networkit. More than one is faster but the result then depends on thread timing (not
        reproducible), so the default is 1.
    sweeps
        networkit: local-moving sweeps per level (PLM's ``maxIter``). On the benchmark's 1M/10M graph,
        PLM's default of 32 took 2.2 times the CPU of 4 for 0.0003 more modularity.

    Returns
    -------
    labels : numpy.ndarray
        int64 per node: 0..k-1 by decreasing community size, -1 for customers without ties.
    modularity : float
        Modularity of the labels (computed here, the same way for every engine).

    Examples
    --------
    >>> from graph.build import from_edges
    >>> g = from_edges(range(7), [0, 1, 2, 3, 4, 5, 2], [1, 2, 0, 4, 5, 3, 3])
    >>> labels, q = detect_communities(g)
    >>> labels.tolist(), round(q, 4)
    ([0, 0, 0, 1, 1, 1, -1], 0.3571)

    References
    ----------
    .. [1] V. D. Blondel, J.-L. Guillaume, R. Lambiotte and E. Lefebvre, "Fast unfolding of communities in
       large networks", J. Stat. Mech. (2008) P10008.
    .. [2] V. A. Traag, L. Waltman and N. J. van Eck, "From Louvain to Leiden: guaranteeing well-connected
       communities", Scientific Reports 9, 5233 (2019).
    .. [3] C. L. Staudt and H. Meyerhenke, "Engineering parallel algorithms for community detection in
       massive networks", IEEE Trans. Parallel and Distributed Systems 27(1), 2016.
    """
    if method not in ("leiden", "louvain"):
        raise GraphError(f"method must be 'leiden' or 'louvain', not {method!r}")
    if not resolution > 0:
        raise GraphError(f"resolution must be positive, not {resolution}")
    name = choose_engine("communities", engine)
    strength, und = _strength_and_pairs(graph)
    tied = strength > 0
    if not tied.any():
        return np.full(graph.n_nodes, -1, dtype=np.int64), 0.0
    if name == "igraph":
        raw = _igraph(graph, seed, resolution, method, n_iterations)
    elif name == "networkit":
        raw = _networkit(graph, seed, resolution, method, threads, sweeps)
    else:
        if method != "louvain":
            raise GraphError("networkx runs Louvain only: use method='louvain' or another engine")
        raw = _networkx(graph, und, seed, resolution)
    labels = _renumber_by_size(raw, tied)
    return labels, modularity(graph, labels, resolution=resolution)


def _igraph(graph: SocialGraph, seed: int, resolution: float, method: str, n_iterations: int) -> Int64Array:
    import igraph as ig

    g = to_igraph(graph, directed=False)
    state = random.getstate()  # igraph draws from Python's random module
    ig.set_random_number_generator(random)
    random.seed(seed)
    try:
        if method == "leiden":
            part = g.community_leiden(
                objective_function="modularity",
                weights="weight",
                resolution=resolution,
                n_iterations=n_iterations,
            )
        else:
            part = g.community_multilevel(weights="weight", resolution=resolution)
    finally:
        random.setstate(state)
    return np.asarray(part.membership, dtype=np.int64)


def _networkit(
    graph: SocialGraph, seed: int, resolution: float, method: str, threads: int, sweeps: int
) -> Int64Array:
    import networkit as nk

    g = to_networkit(graph, directed=False)
    previous = nk.engineering.getMaxNumberOfThreads()
    nk.engineering.setNumberOfThreads(max(1, threads))
    nk.engineering.setSeed(seed, False)  # after the thread count, which resets the per-thread generators
    try:
        plm = nk.community.PLM(g, refine=method == "leiden", gamma=resolution, maxIter=max(1, sweeps))
        plm.run()
    finally:
        nk.engineering.setNumberOfThreads(previous)
    return np.asarray(plm.getPartition().getVector(), dtype=np.int64)


def _networkx(graph: SocialGraph, und: sp.coo_array, seed: int, resolution: float) -> Int64Array:
    import networkx as nx  # type: ignore[import-untyped]

    g = nx.Graph()
    g.add_nodes_from(range(graph.n_nodes))
    g.add_weighted_edges_from(zip(und.row.tolist(), und.col.tolist(), und.data.tolist(), strict=True))
    labels = np.full(graph.n_nodes, -1, dtype=np.int64)
    parts = nx.community.louvain_communities(g, weight="weight", resolution=resolution, seed=seed)
    for c, members in enumerate(parts):
        labels[list(members)] = c
    return labels


def stabilize_labels(
    labels: npt.ArrayLike,
    customer_ids: npt.ArrayLike,
    previous: Mapping[int, int] | None,
    *,
    min_overlap: float = 0.5,
) -> Int64Array:
    """Carry community ids over from the previous run to the communities that are still the same.

    Overlap is measured among the customers present in both runs (so newcomers and departures do not
    count against a community): a new community keeps an old id when their Jaccard index
    ``|new ∩ old| / |new ∪ old|`` is at least ``min_overlap``. Pairs are matched greedily from the
    highest Jaccard down, one to one. Other communities get fresh ids above every old id, largest first.

    Parameters
    ----------
    labels
        This run's labels per node (-1: no community, kept as is).
    customer_ids
        Customer id per node.
    previous
        ``{customer_id: community id}`` of the previous run, or None (the labels are returned as they are).
    min_overlap
        Least Jaccard index for a community to keep an old id.

    Returns
    -------
    numpy.ndarray
        int64 stable id per node (-1 where ``labels`` is -1).

    Examples
    --------
    Community 0 lost a member and gained one, community 1 is new:

    >>> stabilize_labels([0, 0, 0, 1, 1], [1, 2, 5, 6, 7], {1: 7, 2: 7, 3: 7, 4: 9})
    array([ 7,  7,  7, 10, 10])
    """
    lab = np.asarray(labels, dtype=np.int64)
    ids = np.asarray(customer_ids, dtype=np.int64)
    if lab.shape != ids.shape:
        raise GraphError("labels and customer_ids differ in length")
    if previous is None:
        return lab.copy()
    old_ids = np.fromiter(previous.keys(), dtype=np.int64, count=len(previous))
    old_lab = np.fromiter(previous.values(), dtype=np.int64, count=len(previous))
    keep_old = old_lab >= 0
    old_ids, old_lab = old_ids[keep_old], old_lab[keep_old]
    sort = np.argsort(old_ids)
    old_ids, old_lab = old_ids[sort], old_lab[sort]
    pos = np.minimum(np.searchsorted(old_ids, ids), max(old_ids.shape[0] - 1, 0))
    common = (lab >= 0) & (old_ids.shape[0] > 0) & (old_ids[pos] == ids if old_ids.shape[0] else False)
    new_c, prev_c = lab[common], old_lab[pos[common]]
    mapping: dict[int, int] = {}
    if new_c.shape[0]:
        span = int(prev_c.max()) + 1
        keys, both = np.unique(new_c * span + prev_c, return_counts=True)
        pairs = np.stack((keys // span, keys % span))
        new_u, new_size = np.unique(new_c, return_counts=True)
        old_u, old_size = np.unique(prev_c, return_counts=True)
        n_size = new_size[np.searchsorted(new_u, pairs[0])]
        o_size = old_size[np.searchsorted(old_u, pairs[1])]
        jaccard = both / (n_size + o_size - both)
        order = np.lexsort((pairs[1], pairs[0], -both, -jaccard))
        taken: set[int] = set()
        for i in order[jaccard[order] >= min_overlap].tolist():
            new, old = int(pairs[0, i]), int(pairs[1, i])
            if new not in mapping and old not in taken:
                mapping[new] = old
                taken.add(old)
    fresh = int(old_lab.max(initial=-1)) + 1
    present, sizes = np.unique(lab[lab >= 0], return_counts=True)
    lookup = np.full(int(lab.max(initial=-1)) + 1, -1, dtype=np.int64)
    for c in present[np.lexsort((present, -sizes))].tolist():
        if c in mapping:
            lookup[c] = mapping[c]
        else:
            lookup[c] = fresh
            fresh += 1
    out = np.full(lab.shape[0], -1, dtype=np.int64)
    out[lab >= 0] = lookup[lab[lab >= 0]]
    return out


def community_roles(
    graph: SocialGraph,
    labels: npt.ArrayLike,
    influence: npt.ArrayLike,
    *,
    leaders_per_community: int = 3,
    bridge_threshold: float = 0.5,
    resolution: float = 1.0,
) -> Communities:
    """Leaders (most influential members) and bridges (participation coefficient) of each community.

    Parameters
    ----------
    graph
        The relationship graph.
    labels
        Community id per node (-1: none), e.g. from :func:`stabilize_labels`.
    influence
        Score per node used to rank leaders (e.g. PageRank).
    leaders_per_community
        How many leaders to keep per community.
    bridge_threshold
        Least participation coefficient of a bridge.
    resolution
        Resolution used for the reported modularity.

    Returns
    -------
    Communities

    Examples
    --------
    Two triangles joined by the tie 2 - 3; customer 2 is the most influential of its triangle:

    >>> from graph.build import from_edges
    >>> g = from_edges(range(6), [0, 1, 2, 3, 4, 5, 2], [1, 2, 0, 4, 5, 3, 3])
    >>> influence = [0.1, 0.1, 0.3, 0.3, 0.1, 0.1]
    >>> roles = community_roles(g, [0, 0, 0, 1, 1, 1], influence, leaders_per_community=1)
    >>> roles.leaders, roles.bridges.tolist(), [round(float(p), 3) for p in roles.bridge_score]
    ({0: [2], 1: [3]}, [False, False, False, False, False, False], [0.0, 0.0, 0.444, 0.444, 0.0, 0.0])

    References
    ----------
    .. [1] R. Guimerà and L. A. N. Amaral, "Functional cartography of complex metabolic networks", Nature
       433, 895-900 (2005).
    """
    lab = np.asarray(labels, dtype=np.int64)
    score = np.asarray(influence, dtype=np.float64)
    n = graph.n_nodes
    if lab.shape[0] != n or score.shape[0] != n:
        raise GraphError("labels and influence need one value per node")
    strength, und = _strength_and_pairs(graph)
    # Tie weight of each node into each community: both ends of every undirected pair.
    node = np.concatenate((und.row, und.col)).astype(np.int64)
    other = np.concatenate((lab[und.col], lab[und.row]))
    weight = np.concatenate((und.data, und.data))
    columns = int(lab.max(initial=-1)) + 2
    # node x community matrix of tie weight (column 0: customers without community); CSR sums duplicates.
    per = sp.csr_array((weight, (node, other + 1)), shape=(n, columns))
    per.sum_duplicates()
    owner = np.repeat(np.arange(n), np.diff(per.indptr))
    frac = per.data / strength[owner]
    bridge_score = 1.0 - np.bincount(owner, weights=frac**2, minlength=n)
    bridge_score[strength == 0] = 0.0
    bridge_score = np.clip(bridge_score, 0.0, 1.0)
    members = np.flatnonzero(lab >= 0)
    order = members[np.lexsort((members, -score[members], lab[members]))]
    leaders: dict[int, list[int]] = {}
    if order.shape[0]:
        group = lab[order]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        ends = np.r_[starts[1:], order.shape[0]]
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            leaders[int(group[lo])] = order[lo : min(hi, lo + leaders_per_community)].tolist()
    q = modularity(graph, _dense(lab), resolution=resolution) if (lab >= 0).any() else 0.0
    return Communities(
        labels=lab,
        modularity=q,
        leaders=leaders,
        bridges=bridge_score >= bridge_threshold,
        bridge_score=bridge_score,
    )


def _dense(lab: Int64Array) -> Int64Array:
    """Labels renumbered 0..k-1 (stable ids can be sparse), -1 kept."""
    out = np.full(lab.shape[0], -1, dtype=np.int64)
    tied = lab >= 0
    out[tied] = np.unique(lab[tied], return_inverse=True)[1]
    return out
