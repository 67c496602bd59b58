"""Which engine runs what: array engines on the hot path, networkx as the reference.

scrm's own code runs PageRank, reach and the role scores on scipy sparse matrices (always installed).
Community detection needs a compiled Louvain/Leiden: networkit's PLM when networkit is installed (its
graph is built from our CSR arrays in about a second per ten million ties, and PLM is faster than
igraph), otherwise igraph's Leiden (igraph is a dependency of scrm, but building its graph goes through
Python lists: about 0.7 s per million ties). networkx is the reference that the tests compare against on
small graphs; it is never chosen by ``"auto"``.

============  ==========================================  ========================================
task          engines                                     ``"auto"`` picks
============  ==========================================  ========================================
pagerank      scipy, igraph (PRPACK, polished), networkx  scipy
communities   networkit, igraph, networkx (Louvain only)  networkit, else igraph
============  ==========================================  ========================================
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

import numpy as np

from scrm.errors import GraphError

if TYPE_CHECKING:
    from graph.build import SocialGraph

__all__ = ["ENGINES", "available_engines", "choose_engine", "to_igraph", "to_networkit"]

#: Engines per task, in the order ``"auto"`` tries them.
ENGINES: dict[str, tuple[str, ...]] = {
    "pagerank": ("scipy", "igraph", "networkx"),
    "communities": ("networkit", "igraph", "networkx"),
}


def available_engines() -> list[str]:
    """The graph engines importable here, fastest first; ``"networkx"`` (the reference) is always last.

    Examples
    --------
    >>> engines = available_engines()
    >>> engines[0], engines[-1]
    ('scipy', 'networkx')
    """
    found = ["scipy"]
    found += [name for name in ("igraph", "networkit") if importlib.util.find_spec(name) is not None]
    return [*found, "networkx"]


def choose_engine(task: str, engine: str = "auto") -> str:
    """The engine that runs ``task``: ``engine`` itself if it can, else the first available for ``"auto"``.

    Raises
    ------
    scrm.errors.GraphError
        Unknown task, an engine that does not run the task, or one that is not installed.

    Examples
    --------
    >>> choose_engine("pagerank")
    'scipy'
    >>> choose_engine("communities", "networkx")
    'networkx'
    """
    if task not in ENGINES:
        raise GraphError(f"unknown graph task {task!r}; one of {sorted(ENGINES)}")
    installed = available_engines()
    if engine == "auto":
        return next(name for name in ENGINES[task] if name in installed)
    if engine not in ENGINES[task]:
        raise GraphError(f"engine {engine!r} does not run {task}; use one of {list(ENGINES[task])} or 'auto'")
    if engine not in installed:
        raise GraphError(f"engine {engine!r} is not installed (pip install {engine}), or use engine='auto'")
    return engine


def to_igraph(graph: SocialGraph, *, directed: bool) -> Any:
    """An ``igraph.Graph`` with a ``weight`` edge attribute (the undirected collapse unless ``directed``)."""
    import igraph as ig

    if directed:
        src, dst, weight = graph.src, graph.dst, graph.weight
    else:
        und = graph.undirected()
        src, dst, weight = und.row, und.col, und.data
    result = ig.Graph(n=graph.n_nodes, edges=np.column_stack((src, dst)), directed=directed)
    result.es["weight"] = weight
    return result


def to_networkit(graph: SocialGraph, *, directed: bool) -> Any:
    """A weighted ``networkit.Graph`` (the undirected collapse unless ``directed``), built from CSR arrays."""
    import networkit as nk
    import scipy.sparse as sp

    matrix = graph.to_csr() if directed else sp.csr_array(graph.undirected())  # undirected: each tie once
    return nk.graph.GraphFromCsr(matrix, directed=directed, weighted=True)
