"""The relationship graph in array form: from customer-id arrays or from the store.

A :class:`SocialGraph` is a directed weighted graph over customers kept as numpy arrays (CSR order), so
that the scoring algorithms run on scipy sparse matrices or hand the arrays to igraph / networkit without
building networkx objects node by node. An edge ``u -> v`` means "u pays attention to v": u was referred
by v, u read what v shared, u replied to or mentioned v. PageRank along these edges therefore ranks v.

:func:`load_graph` reads the store with a few bulk queries: every non-merged customer is a node (also
those without ties), ``relation`` rows give ``source -> target`` edges, ``interaction`` rows with a target
customer give ``author -> target`` edges, except ``share_read`` (customer = the sharer, target = the
reader), which gives ``reader -> sharer``. Each row weighs ``kind_weight * 0.5 ** (age_days /
half_life_days)`` (a relation: times its own ``weight``, aged by ``last_at``); the weights of one pair
are summed. Self-loops are dropped: attention to oneself says nothing about influence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import sqlalchemy as sa

from graph.groups import GROUP_MEMBER, co_member_ties
from scrm.errors import GraphError

if TYPE_CHECKING:
    import networkx as nx  # type: ignore[import-untyped]

__all__ = ["REVERSED_KINDS", "SocialGraph", "from_edges", "load_graph"]

#: Interaction kinds whose ``customer_id`` is the one paid attention to (the sharer of a read share).
REVERSED_KINDS = frozenset({"share_read"})
#: The relation kind that gives :attr:`SocialGraph.referral_parent`.
REFERRED_BY = "referred_by"

IntArray = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class SocialGraph:
    """Directed weighted graph over customers in array form.

    Edge ``u -> v`` means "u pays attention to v" (u was referred by v, u read what v shared, u replied
    to / mentioned v): PageRank along these edges ranks v. Edges are sorted by ``(src, dst)``, unique,
    without self-loops, and every weight is positive. Build one with :func:`from_edges` or
    :func:`load_graph` rather than by hand.

    Attributes
    ----------
    customer_ids
        int64, node index -> customer id, sorted ascending.
    src, dst
        int32 node indices of each edge.
    weight
        float64 (> 0) per edge, duplicates already summed.
    referral_parent
        int32 per node: index of the customer who referred it, or -1. Always a forest (cycles in the
        data are cut, see :func:`from_edges`).
    """

    customer_ids: Int64Array
    src: IntArray
    dst: IntArray
    weight: FloatArray
    referral_parent: IntArray
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_nodes(self) -> int:
        """Number of customers (nodes), with or without ties."""
        return int(self.customer_ids.shape[0])

    @property
    def n_edges(self) -> int:
        """Number of distinct directed pairs."""
        return int(self.src.shape[0])

    def index_of(self, customer_ids: npt.ArrayLike) -> Int64Array:
        """Node indices of customer ids; raises :class:`~scrm.errors.GraphError` for unknown ids."""
        return _index_of(self.customer_ids, np.asarray(customer_ids, dtype=np.int64))

    def to_csr(self) -> sp.csr_array:
        """The weighted adjacency matrix, ``A[u, v] = weight`` of ``u -> v`` (cached)."""
        if "csr" not in self._cache:
            counts = np.bincount(self.src, minlength=self.n_nodes)
            index = np.int32 if self.n_edges < 2**31 else np.int64  # int32: less memory traffic per product
            indptr = np.zeros(self.n_nodes + 1, dtype=index)
            np.cumsum(counts, out=indptr[1:])
            self._cache["csr"] = sp.csr_array(
                (self.weight, self.dst, indptr), shape=(self.n_nodes, self.n_nodes)
            )
        matrix: sp.csr_array = self._cache["csr"]
        return matrix

    def undirected(self) -> sp.coo_array:
        """The undirected collapse as the upper triangle: ``w(u, v) = w(u -> v) + w(v -> u)`` (cached)."""
        if "undirected" not in self._cache:
            a = self.to_csr()
            both = sp.triu(a + a.T, k=1, format="coo")
            self._cache["undirected"] = sp.coo_array(
                (both.data, (both.row.astype(np.int32), both.col.astype(np.int32))), shape=both.shape
            )
        matrix: sp.coo_array = self._cache["undirected"]
        return matrix

    def to_networkx(self) -> nx.DiGraph:
        """A networkx ``DiGraph``: customer ids as nodes, ``weight`` on each edge (for small graphs)."""
        import networkx as nx

        graph = nx.DiGraph()
        ids = self.customer_ids.tolist()
        graph.add_nodes_from(ids)
        graph.add_weighted_edges_from(
            zip(
                self.customer_ids[self.src].tolist(),
                self.customer_ids[self.dst].tolist(),
                self.weight.tolist(),
                strict=True,
            )
        )
        return graph


def _index_of(sorted_ids: Int64Array, ids: Int64Array) -> Int64Array:
    """Positions of ``ids`` in ``sorted_ids`` (unique, ascending); GraphError for ids that are not there."""
    n = sorted_ids.shape[0]
    if ids.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if n == 0:
        raise GraphError(f"{ids.shape[0]} ids given for a graph without customers")
    lo, hi = int(sorted_ids[0]), int(sorted_ids[-1])
    if hi - lo < 4 * n + 1024:
        # Dense ids (store ids with a few holes from merges): one lookup table instead of binary searches,
        # which cost a cache miss per level on millions of edges.
        table = np.full(hi - lo + 1, -1, dtype=np.int64)
        table[sorted_ids - lo] = np.arange(n)
        inside = (ids >= lo) & (ids <= hi)
        if inside.all():
            pos = table[ids - lo]
        else:
            pos = np.full(ids.shape[0], -1, dtype=np.int64)
            pos[inside] = table[ids[inside] - lo]
        bad = pos < 0
    else:
        pos = np.minimum(np.searchsorted(sorted_ids, ids), n - 1).astype(np.int64)
        bad = sorted_ids[pos] != ids
    if bad.any():
        sample = ids[bad][:5].tolist()
        raise GraphError(f"{int(bad.sum())} edge ends are not customers of the graph, e.g. {sample}")
    return pos


def _cut_cycles(parent: IntArray) -> IntArray:
    """Make ``parent`` a forest: on every cycle, the node with the smallest index becomes a root."""
    n = parent.shape[0]
    if n == 0:
        return parent
    # Pointer jumping: after k rounds, anc is the 2**k-th ancestor (or -1). A node whose ancestor at
    # distance >= n is not -1 lies on or below a cycle.
    anc = parent.copy()
    steps = 1
    while steps < n:
        has = anc >= 0
        nxt = np.full(n, -1, dtype=np.int32)
        nxt[has] = anc[anc[has]]
        anc = nxt
        steps *= 2
        if not (anc >= 0).any():
            return parent
    doomed = np.flatnonzero(anc >= 0)
    if doomed.shape[0] == 0:
        return parent
    parent = parent.copy()
    state = np.zeros(n, dtype=np.int8)  # 0 unseen, 1 on the current path, 2 done
    for start in doomed.tolist():
        path: list[int] = []
        node = start
        while node >= 0 and state[node] == 0:
            state[node] = 1
            path.append(node)
            node = int(parent[node])
        if node >= 0 and state[node] == 1:  # closed a new cycle: cut it at its smallest index
            cycle = path[path.index(node) :]
            parent[min(cycle)] = -1
        for visited in path:
            state[visited] = 2
    return parent


def from_edges(
    customer_ids: npt.ArrayLike,
    src_ids: npt.ArrayLike,
    dst_ids: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    *,
    referral: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
) -> SocialGraph:
    """Build a :class:`SocialGraph` from customer-id arrays.

    Parameters
    ----------
    customer_ids
        Every customer that is a node (duplicates are ignored; customers without ties are kept).
    src_ids, dst_ids
        Customer ids of each edge ``src -> dst`` ("src pays attention to dst"); every id must be in
        ``customer_ids``.
    weights
        Positive weight per edge (default 1). Weights of repeated pairs are summed; self-loops dropped.
    referral
        ``(referred_ids, referrer_ids)``: who was referred by whom. Only sets
        :attr:`SocialGraph.referral_parent` (add the pairs to the edges too if they should count for
        PageRank). A customer referred twice keeps the first pair given; a referral cycle is cut at the
        customer with the smallest id.

    Returns
    -------
    SocialGraph

    Raises
    ------
    scrm.errors.GraphError
        Unknown ids, arrays of different lengths, or weights that are not positive and finite.

    Examples
    --------
    >>> g = from_edges([10, 20, 30], [10, 10, 20], [20, 20, 30], [1.0, 2.0, 0.5], referral=([30], [20]))
    >>> g.n_nodes, g.n_edges, g.weight.tolist(), g.referral_parent.tolist()
    (3, 2, [3.0, 0.5], [-1, -1, 1])
    """
    ids = np.asarray(customer_ids, dtype=np.int64).ravel()
    if ids.shape[0] > 1 and not (ids[1:] > ids[:-1]).all():
        ids = np.unique(ids)
    src = np.asarray(src_ids, dtype=np.int64).ravel()
    dst = np.asarray(dst_ids, dtype=np.int64).ravel()
    if src.shape != dst.shape:
        raise GraphError(f"src_ids and dst_ids differ in length ({src.shape[0]} and {dst.shape[0]})")
    w = np.ones(src.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != src.shape:
        raise GraphError(f"{w.shape[0]} weights for {src.shape[0]} edges")
    if w.shape[0] and not (np.isfinite(w).all() and (w > 0).all()):
        raise GraphError("edge weights must be positive and finite")
    n = ids.shape[0]
    s = _index_of(ids, src)
    d = _index_of(ids, dst)
    keep = s != d
    if not keep.all():
        s, d, w = s[keep], d[keep], w[keep]
    # Sum duplicates and sort by (src, dst) in one pass through scipy's COO -> CSR conversion.
    matrix = sp.csr_array((w, (s, d)), shape=(n, n))
    matrix.sum_duplicates()
    src_idx = np.repeat(np.arange(n, dtype=np.int32), np.diff(matrix.indptr))
    parent = np.full(n, -1, dtype=np.int32)
    if referral is not None:
        child = _index_of(ids, np.asarray(referral[0], dtype=np.int64).ravel())
        referrer = _index_of(ids, np.asarray(referral[1], dtype=np.int64).ravel())
        if child.shape != referrer.shape:
            raise GraphError("referral arrays differ in length")
        ok = child != referrer
        child, referrer = child[ok], referrer[ok]
        # The first pair given per child wins: write in reverse order so that it is written last.
        parent[child[::-1]] = referrer[::-1].astype(np.int32)
        parent = _cut_cycles(parent)
    return SocialGraph(
        customer_ids=ids,
        src=src_idx,
        dst=matrix.indices.astype(np.int32, copy=False),
        weight=matrix.data.astype(np.float64, copy=False),
        referral_parent=parent,
    )


def _epoch_seconds(conn: sa.Connection, column: str) -> str:
    """SQL for a UTCDateTime column as float unix seconds on each backend."""
    if conn.dialect.name == "sqlite":
        return f"(julianday({column}) - 2440587.5) * 86400.0"
    return f"CAST(EXTRACT(EPOCH FROM {column}) AS DOUBLE PRECISION)"


def _fetch(conn: sa.Connection, sql: str, params: Mapping[str, Any], ncols: int) -> list[npt.NDArray[Any]]:
    """Columns of a numeric query as float64 arrays, read from the driver's cursor (no Row objects:
    numpy converts a million SQLAlchemy rows in over a minute, plain tuples in a fraction of a second)."""
    result = conn.execute(sa.text(sql), dict(params))
    rows = result.cursor.fetchall() if result.cursor is not None else []
    result.close()
    flat = np.fromiter((v for row in rows for v in row), dtype=np.float64, count=len(rows) * ncols)
    table = flat.reshape(len(rows), ncols)
    return [table[:, i].copy() for i in range(ncols)]


def _kind_case(column: str, kinds: list[str]) -> tuple[str, dict[str, str]]:
    """SQL mapping ``column`` to the position of its value in ``kinds`` (bound parameters), and the params."""
    whens = " ".join(f"WHEN :kind{i} THEN {i}" for i in range(len(kinds)))
    return f"CASE {column} {whens} END", {f"kind{i}": kind for i, kind in enumerate(kinds)}


def _ties(
    conn: sa.Connection,
    table: str,
    columns: tuple[str, str, str, str],
    kinds: list[str],
    live: npt.NDArray[Any],
) -> list[npt.NDArray[Any]]:
    """One scan of ``table`` for every kind at once: source, target, time (unix s), extra, kind position.

    Rows touching a customer not in ``live`` (merged ones) are dropped here, in numpy: joining the
    customer table twice per row made SQLite's scan several times slower than the scan itself.
    """
    if not kinds:
        return [np.zeros(0) for _ in range(5)]
    source, target, time_column, extra = columns
    case, params = _kind_case("kind", kinds)
    placeholders = ", ".join(f":kind{i}" for i in range(len(kinds)))
    rows = _fetch(
        conn,
        f"SELECT {source}, {target}, {_epoch_seconds(conn, time_column)}, {extra}, {case} FROM {table} "
        f"WHERE kind IN ({placeholders}) AND {target} IS NOT NULL",
        params,
        5,
    )
    keep = np.isin(rows[0], live) & np.isin(rows[1], live)
    return [column[keep] for column in rows]


def load_graph(
    conn: sa.Connection,
    *,
    now: datetime,
    half_life_days: float,
    kind_weights: Mapping[str, float],
) -> SocialGraph:
    """Read the relationship graph from the store with a few bulk queries.

    Parameters
    ----------
    conn
        A connection to a store at the current schema.
    now
        Timezone-aware time the ages are measured from (rows in the future count as age 0).
    half_life_days
        A tie loses half its weight every ``half_life_days`` days.
    kind_weights
        Weight per relation or interaction kind (``referred_by``, ``share_read``, ``reply``, ``mention``,
        ``invited_to_group``, ...). Kinds missing here or weighted 0 add no edges. ``group_member``
        ties co-members of customer groups (:func:`graph.groups.co_member_ties`, both directions,
        bounded per group). ``referred_by`` relations always give
        :attr:`SocialGraph.referral_parent` (the earliest referrer of a customer wins).

    Returns
    -------
    SocialGraph
        Every customer with ``merged_into_id IS NULL`` is a node; rows touching merged customers are
        left out.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from scrm.store import Store
    >>> store = Store("sqlite://"); _ = store.upgrade()
    >>> with store.connect() as conn:
    ...     g = load_graph(conn, now=datetime.now(UTC), half_life_days=90, kind_weights={"reply": 1.0})
    >>> g.n_nodes, g.n_edges
    (0, 0)
    """
    if now.tzinfo is None:
        raise GraphError("now must be timezone-aware")
    if not half_life_days > 0:
        raise GraphError(f"half_life_days must be positive, not {half_life_days}")
    now_s = now.timestamp()
    ids = np.array(
        conn.execute(sa.text("SELECT id FROM customer WHERE merged_into_id IS NULL ORDER BY id"))
        .scalars()
        .all(),
        dtype=np.int64,
    )
    src_parts: list[npt.NDArray[Any]] = []
    dst_parts: list[npt.NDArray[Any]] = []
    w_parts: list[npt.NDArray[Any]] = []

    def add(
        src: npt.NDArray[Any], dst: npt.NDArray[Any], at: npt.NDArray[Any], weight: npt.NDArray[Any]
    ) -> None:
        age_days = np.maximum(now_s - at, 0.0) / 86400.0
        src_parts.append(src)
        dst_parts.append(dst)
        w_parts.append(weight * 0.5 ** (age_days / half_life_days))

    weights = {kind: float(w) for kind, w in kind_weights.items() if float(w) > 0}
    kinds = sorted(weights)
    per_kind = np.array([weights[k] for k in kinds] + [0.0])
    rel = _ties(conn, "relation", ("source_id", "target_id", "last_at", "weight"), kinds, ids)
    add(rel[0], rel[1], rel[2], per_kind[rel[4].astype(np.int64)] * rel[3])
    act = _ties(conn, "interaction", ("customer_id", "target_customer_id", "occurred_at", "0"), kinds, ids)
    reversed_kind = np.array([k in REVERSED_KINDS for k in kinds] + [False])[act[4].astype(np.int64)]
    author = np.where(reversed_kind, act[1], act[0])
    target = np.where(reversed_kind, act[0], act[1])
    add(author, target, act[2], per_kind[act[4].astype(np.int64)])
    if weights.get(GROUP_MEMBER):  # co-members of customer groups: bounded ties (graph/groups.py)
        group, member, joined = _fetch(
            conn,
            f"SELECT m.group_id, m.customer_id, {_epoch_seconds(conn, 'm.joined_at')} "
            "FROM group_membership m JOIN customer c ON c.id = m.customer_id AND c.merged_into_id IS NULL "
            "WHERE m.left_at IS NULL ORDER BY m.group_id, m.joined_at, m.customer_id",
            {},
            3,
        )
        g_src, g_dst, g_at, g_w = co_member_ties(group, member, joined, weights[GROUP_MEMBER])
        add(g_src, g_dst, g_at, g_w)
    child, referrer, first_at, rel_id, _ = _ties(
        conn, "relation", ("source_id", "target_id", "first_at", "id"), [REFERRED_BY], ids
    )
    order = np.lexsort((rel_id, first_at))  # earliest first: from_edges keeps the first pair per child
    src_all = np.concatenate(src_parts) if src_parts else np.zeros(0)
    dst_all = np.concatenate(dst_parts) if dst_parts else np.zeros(0)
    w_all = np.concatenate(w_parts) if w_parts else np.zeros(0)
    positive = w_all > 0  # a weight can underflow to 0 for very old rows
    return from_edges(
        ids,
        src_all[positive].astype(np.int64),
        dst_all[positive].astype(np.int64),
        w_all[positive],
        referral=(child[order].astype(np.int64), referrer[order].astype(np.int64)),
    )
