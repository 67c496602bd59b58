"""Ties between co-members of customer groups, bounded in number.

Members of one customer group (a WeCom 客户群) see each other's messages, so each pays some attention
to the others. A clique would give a 500-member group 249,500 edges, and 10,000 such groups more
edges than the rest of the graph together, so the ties are bounded:

- a group of ``n <= neighbours + 1`` members: every member is tied to every other (both directions);
- a larger group: the members in join order form a ring, each tied to the ``neighbours / 2`` who
  joined just before and just after them (both directions), a ring lattice as in Watts & Strogatz
  (1998): ``neighbours * n`` edges, each member with ``neighbours`` ties.

Every tie weighs ``weight / n``: a member's attention is spread over the whole group, so a tie in a
small group weighs more than one in a crowd (the same reasoning as Newman's (2001) ``1 / (n - 1)``
weighting of co-authorship). A tie is as old as the later of the two joins.

References
----------
.. [1] D. J. Watts and S. H. Strogatz, "Collective dynamics of 'small-world' networks", Nature 393,
   440-442 (1998).
.. [2] M. E. J. Newman, "Scientific collaboration networks. II. Shortest paths, weighted networks, and
   centrality", Physical Review E 64, 016132 (2001).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["GROUP_MEMBER", "co_member_ties"]

#: the ``[scoring.kinds]`` weight of co-membership ties
GROUP_MEMBER = "group_member"

Ties = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]


def co_member_ties(
    group: npt.ArrayLike,
    member: npt.ArrayLike,
    joined: npt.ArrayLike,
    weight: float,
    *,
    neighbours: int = 8,
) -> Ties:
    """Directed ties between co-members: ``(src, dst, at, w)`` arrays.

    Parameters
    ----------
    group, member, joined
        One row per current stay: group id, customer id, join time (unix seconds). Rows must be
        sorted by group, then in join order; a repeated (group, member) keeps its first row.
    weight
        The ``group_member`` kind weight: each tie of a group of ``n`` weighs ``weight / n``.
    neighbours
        Ties per member in a large group (even, at least 2).

    Returns
    -------
    tuple of arrays
        Source and target customer ids, the tie's time (the later join) and its weight.

    Examples
    --------
    Three members: all six ordered pairs, each ``0.3 / 3``. Twenty members: 8 ties each.

    >>> src, dst, at, w = co_member_ties([1, 1, 1], [10, 11, 12], [0, 5, 9], 0.3)
    >>> sorted(zip(src.tolist(), dst.tolist()))
    [(10, 11), (10, 12), (11, 10), (11, 12), (12, 10), (12, 11)]
    >>> round(float(w[0]), 12), int(at[src == 10].max())
    (0.1, 9)
    >>> src, dst, _, _ = co_member_ties([7] * 20, range(20), range(20), 1.0)
    >>> len(src), np.bincount(src).tolist() == [8] * 20, np.bincount(dst).tolist() == [8] * 20
    (160, True, True)
    """
    if neighbours < 2 or neighbours % 2:
        raise ValueError(f"neighbours must be even and at least 2, not {neighbours}")
    g = np.asarray(group, dtype=np.int64)
    m = np.asarray(member, dtype=np.int64)
    t = np.asarray(joined, dtype=np.float64)
    if g.shape[0]:
        key = np.stack([g, m])
        _, first = np.unique(key, axis=1, return_index=True)
        keep = np.sort(first)
        g, m, t = g[keep], m[keep], t[keep]
    n = g.shape[0]
    empty = np.zeros(0, dtype=np.int64)
    if n == 0:
        return empty, empty, np.zeros(0), np.zeros(0)
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    sizes = np.diff(np.r_[starts, n])
    size = np.repeat(sizes, sizes)
    start = np.repeat(starts, sizes)
    pos = np.arange(n) - start
    small = size <= neighbours + 1
    rows = np.arange(n)
    src_parts: list[npt.NDArray[np.int64]] = []
    dst_parts: list[npt.NDArray[np.int64]] = []
    for d in range(1, neighbours + 1):
        partner = start + (pos + d) % size
        pick = small & (d < size)  # small groups: every ordered pair once
        src_parts += [rows[pick]]
        dst_parts += [partner[pick]]
        if d <= neighbours // 2:  # large groups: a ring lattice, both directions
            big = ~small
            src_parts += [rows[big], partner[big]]
            dst_parts += [partner[big], rows[big]]
    a = np.concatenate(src_parts)
    b = np.concatenate(dst_parts)
    return m[a], m[b], np.maximum(t[a], t[b]), weight / size[a].astype(np.float64)
