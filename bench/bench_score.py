"""The graph side of a rescore from arrays, side by side with networkx, networkit and igraph.

``.venv/bin/python bench/bench_score.py`` runs 10k/100k, 100k/1M and 1M/10M customers/ties;
``--sizes 10k,100k`` picks scales, ``--json PATH`` also writes the rows. For each size a social graph
with planted communities is generated (numpy, seeded: the same graph on every machine) and saved; then
each engine runs in a child process of its own (so that its peak RSS is its own) on the same arrays:

* **scrm**: our stages, one function each (:data:`STAGES`; the pipeline's value stage can be appended):
  build (:func:`graph.build.from_edges`), PageRank (:func:`graph.influence.pagerank`, tol 1e-10),
  communities (:func:`graph.communities.detect_communities`, then :func:`stabilize_labels` and
  :func:`community_roles`), reach and referral reach (:mod:`graph.reach`).
* **networkx**: ``DiGraph`` built edge by edge, ``nx.pagerank`` asked for the same precision
  (``tol = 1e-10 / N``, since its stop rule is ``N * tol``), ``louvain_communities`` on the undirected
  collapse, two-hop reach by BFS with cutoff 2 (10k only). Each stage is abandoned after ``--nx-cap``
  seconds (default 600); at 1M/10M networkx is skipped (``--nx-max`` customers, default 100,000): the
  issue measured 66 s and 7 GB for the build and 97 s for PageRank there, and Louvain does not finish.
* **networkit** (its defaults, all cores): ``GraphFromCsr``, ``PageRank`` (L1 norm, sinks distributed,
  tol 1e-10), ``PLM`` (Louvain; its default: no refinement).
* **igraph**: ``Graph(n, edges)``, ``pagerank`` (PRPACK), ``community_multilevel`` (Louvain).

The table gives seconds per stage and in total, the child's peak RSS, the PageRank L1 residual
``||G x - x||_1`` (one more power iteration, computed by the parent with the same model: uniform
teleport, dangling customers spread uniformly), the modularity of the labels on the undirected collapse
(the same function for every engine) and the speedup of the total over networkx.

The generated graph: communities of about 200 customers (Pareto-distributed sizes), directed ties
drawn by heavy-tailed activity (who pays attention: Pareto 2.0) and popularity (who is paid attention
to: Pareto 1.6), 80 % of ties inside the community, positive weights (exponential), duplicates and
self-loops removed, and a referral parent for 30 % of customers (an earlier member of their community).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graph.build import SocialGraph, from_edges
from graph.communities import community_roles, detect_communities, modularity, stabilize_labels
from graph.influence import pagerank, pagerank_residual
from graph.reach import reach, referral_reach

SIZES = {"10k": (10_000, 100_000), "100k": (100_000, 1_000_000), "1M": (1_000_000, 10_000_000)}
ENGINES = ("scrm", "networkx", "networkit", "igraph")
ALPHA, TOL = 0.85, 1e-10


def generate(
    n: int, m: int, seed: int = 42, *, inside: float = 0.8, mean_size: int = 200
) -> dict[str, np.ndarray]:
    """A directed social graph with planted communities and heavy-tailed degrees (numpy, seeded)."""
    rng = np.random.default_rng(seed)
    k = max(2, n // mean_size)
    sizes = rng.pareto(2.0, k) + 1.0
    sizes = np.maximum(1, np.round(sizes / sizes.sum() * n)).astype(np.int64)
    sizes[np.argmax(sizes)] += n - sizes.sum()
    community = np.repeat(np.arange(k), sizes)
    rng.shuffle(community)
    activity = rng.pareto(2.0, n) + 1.0
    popularity = rng.pareto(1.6, n) + 1.0
    members = np.argsort(community, kind="stable")  # members of each community, ascending
    starts = np.concatenate(([0], np.cumsum(np.bincount(community, minlength=k))))
    cum_inside = np.cumsum(popularity[members])
    cum_all = np.cumsum(popularity)
    draw = int(m * 1.15) + 1000
    src = np.searchsorted(np.cumsum(activity), rng.random(draw) * activity.sum()).clip(0, n - 1)
    c = community[src]
    lo = np.where(starts[c] > 0, cum_inside[np.maximum(starts[c] - 1, 0)], 0.0)
    hi = cum_inside[starts[c + 1] - 1]
    r = rng.random(draw)
    dst_in = members[np.searchsorted(cum_inside, lo + r * (hi - lo)).clip(0, n - 1)]
    dst_any = np.searchsorted(cum_all, r * cum_all[-1]).clip(0, n - 1)
    dst = np.where(rng.random(draw) < inside, dst_in, dst_any)
    keys = np.unique(src.astype(np.int64) * n + dst)
    keys = keys[keys // n != keys % n]
    keys = np.sort(rng.choice(keys, size=min(m, keys.shape[0]), replace=False))
    # Referrals: 30 % of customers name an earlier member (by index) of their own community: a forest.
    rank = np.empty(n, dtype=np.int64)
    rank[members] = np.arange(n) - starts[community[members]]
    referred = np.flatnonzero((rng.random(n) < 0.3) & (rank > 0))
    pick = starts[community[referred]] + (rng.random(referred.shape[0]) * rank[referred]).astype(np.int64)
    return {
        "ids": np.arange(n, dtype=np.int64),
        "src": (keys // n).astype(np.int32),
        "dst": (keys % n).astype(np.int32),
        "weight": rng.exponential(1.0, keys.shape[0]) + 0.01,
        "referred": referred,
        "referrer": members[pick],
        "community": community,
    }


# --- scrm: one function per stage ----------------------------------------------------------------


@dataclass
class Context:
    """What the stages share: the input arrays, the graph and every stage's results."""

    data: dict[str, np.ndarray]
    graph: SocialGraph | None = None
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def g(self) -> SocialGraph:
        assert self.graph is not None
        return self.graph


def stage_build(ctx: Context) -> None:
    d = ctx.data
    ctx.graph = from_edges(d["ids"], d["src"], d["dst"], d["weight"], referral=(d["referred"], d["referrer"]))


def stage_pagerank(ctx: Context) -> None:
    ctx.results["pagerank"] = pagerank(ctx.g, alpha=ALPHA, tol=TOL)


def stage_communities(ctx: Context) -> None:
    labels, _ = detect_communities(ctx.g, seed=42)
    previous = None  # a first run; the stable ids of a later run cost one more pass of the same kind
    stable = stabilize_labels(labels, ctx.g.customer_ids, previous)
    ctx.results["labels"] = stable
    ctx.results["roles"] = community_roles(ctx.g, stable, ctx.results["pagerank"])


def stage_reach(ctx: Context) -> None:
    ctx.results["reach"] = reach(ctx.g)


def stage_referral(ctx: Context) -> None:
    ctx.results["referral"] = referral_reach(ctx.g)


STAGES: list[tuple[str, Callable[[Context], None]]] = [
    ("build", stage_build),
    ("pagerank", stage_pagerank),
    ("communities", stage_communities),
    ("reach", stage_reach),
    ("referral", stage_referral),
]


def run_scrm(data: dict[str, np.ndarray], cap: float) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    from graph.engine import available_engines

    for engine in available_engines():  # imported before timing, as the direct runs import theirs
        if engine not in ("scipy", "networkx"):
            __import__(engine)
    ctx = Context(data)
    times = {}
    for name, stage in STAGES:
        start = time.perf_counter()
        stage(ctx)
        times[name] = time.perf_counter() - start
        print(f"    {name}: {times[name]:.2f} s", file=sys.stderr, flush=True)
    return times, {"pagerank": ctx.results["pagerank"], "labels": ctx.results["labels"]}


# --- the others, called directly ------------------------------------------------------------------


def _undirected_arrays(data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import scipy.sparse as sp

    n = data["ids"].shape[0]
    a = sp.csr_array((data["weight"], (data["src"], data["dst"])), shape=(n, n))
    und = sp.triu(a + a.T, k=1, format="coo")
    return und.row, und.col, und.data


def run_networkx(data: dict[str, np.ndarray], cap: float) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    import networkx as nx

    n = data["ids"].shape[0]
    times: dict[str, float] = {}
    out: dict[str, np.ndarray] = {}
    start = time.perf_counter()
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    g.add_weighted_edges_from(
        zip(data["src"].tolist(), data["dst"].tolist(), data["weight"].tolist(), strict=True)
    )
    times["build"] = time.perf_counter() - start
    start = time.perf_counter()
    ranks = nx.pagerank(g, alpha=ALPHA, tol=TOL / n, max_iter=1000, weight="weight")
    times["pagerank"] = time.perf_counter() - start
    out["pagerank"] = np.array([ranks[v] for v in range(n)])
    start = time.perf_counter()
    und = nx.Graph()
    und.add_nodes_from(range(n))
    und.add_weighted_edges_from(zip(*(x.tolist() for x in _undirected_arrays(data)), strict=True))
    parts = nx.community.louvain_communities(und, weight="weight", seed=42)
    labels = np.full(n, -1, dtype=np.int64)
    for c, members in enumerate(parts):
        labels[list(members)] = c
    times["communities"] = time.perf_counter() - start
    out["labels"] = labels
    if n <= 10_000:
        start = time.perf_counter()
        upstream = g.reverse(copy=False)
        for v in range(n):
            nx.single_source_shortest_path_length(upstream, v, cutoff=2)
        times["reach"] = time.perf_counter() - start
    return times, out


def run_networkit(data: dict[str, np.ndarray], cap: float) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    import networkit as nk
    import scipy.sparse as sp

    n = data["ids"].shape[0]
    times: dict[str, float] = {}
    start = time.perf_counter()
    directed = nk.graph.GraphFromCsr(
        sp.csr_array((data["weight"], (data["src"], data["dst"])), shape=(n, n)), directed=True, weighted=True
    )
    row, col, w = _undirected_arrays(data)
    undirected = nk.graph.GraphFromCsr(
        sp.csr_array((w, (row, col)), shape=(n, n)), directed=False, weighted=True
    )
    times["build"] = time.perf_counter() - start
    start = time.perf_counter()
    pr = nk.centrality.PageRank(
        directed, damp=ALPHA, tol=TOL, distributeSinks=nk.centrality.SinkHandling.DistributeSinks
    )
    pr.norm = nk.centrality.Norm.L1_NORM
    pr.run()
    times["pagerank"] = time.perf_counter() - start
    start = time.perf_counter()
    plm = nk.community.PLM(undirected)
    plm.run()
    times["communities"] = time.perf_counter() - start
    scores = np.asarray(pr.scores())
    return times, {"pagerank": scores / scores.sum(), "labels": np.asarray(plm.getPartition().getVector())}


def run_igraph(data: dict[str, np.ndarray], cap: float) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    import igraph as ig

    n = data["ids"].shape[0]
    times: dict[str, float] = {}
    start = time.perf_counter()
    directed = ig.Graph(n=n, edges=np.column_stack((data["src"], data["dst"])), directed=True)
    directed.es["weight"] = data["weight"]
    row, col, w = _undirected_arrays(data)
    undirected = ig.Graph(n=n, edges=np.column_stack((row, col)), directed=False)
    undirected.es["weight"] = w
    times["build"] = time.perf_counter() - start
    start = time.perf_counter()
    ranks = directed.pagerank(damping=ALPHA, weights="weight", implementation="prpack")
    times["pagerank"] = time.perf_counter() - start
    start = time.perf_counter()
    part = undirected.community_multilevel(weights="weight")
    times["communities"] = time.perf_counter() - start
    return times, {"pagerank": np.asarray(ranks), "labels": np.asarray(part.membership)}


RUNNERS = {"scrm": run_scrm, "networkx": run_networkx, "networkit": run_networkit, "igraph": run_igraph}


def child(engine: str, path: str, cap: float, out_path: str, queue: Any) -> None:
    """Run one engine on the saved arrays; send times and peak RSS, save scores for the parent."""
    with np.load(path) as saved:
        data = {key: saved[key] for key in saved.files}
    cpu = time.process_time()
    times, out = RUNNERS[engine](data, cap)
    cpu = time.process_time() - cpu
    np.savez(out_path, **out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put({"times": times, "cpu": cpu, "peak_mb": peak, "load": os.getloadavg()[0]})


def measure(engine: str, path: Path, workdir: Path, cap: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    out_path = workdir / f"{engine}-out.npz"
    proc = ctx.Process(target=child, args=(engine, str(path), cap, str(out_path), queue))
    proc.start()
    proc.join(cap)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return {"engine": engine, "error": f"stopped after {cap:.0f} s"}
    if proc.exitcode != 0 or queue.empty():
        return {"engine": engine, "error": f"exit code {proc.exitcode}"}
    result: dict[str, Any] = {"engine": engine, **queue.get()}
    with np.load(out_path) as saved:
        result["scores"] = {key: saved[key] for key in saved.files}
    return result


def quality(result: dict[str, Any], graph: SocialGraph) -> None:
    scores = result.pop("scores", {})
    if "pagerank" in scores:
        result["residual"] = pagerank_residual(graph, scores["pagerank"], alpha=ALPHA)
    if "labels" in scores:
        labels = scores["labels"].astype(np.int64)
        untied = labels < 0
        if untied.any():  # customers without ties: their own singleton communities, as the engines do
            labels = labels.copy()
            labels[untied] = labels.max() + 1 + np.arange(int(untied.sum()))
        dense = np.unique(labels, return_inverse=True)[1]
        strength = np.bincount(graph.src, minlength=graph.n_nodes) + np.bincount(
            graph.dst, minlength=graph.n_nodes
        )
        dense[strength == 0] = -1
        result["modularity"] = modularity(graph, dense)


def print_table(console: Any, rows: list[dict[str, Any]], seed: int) -> None:
    from rich.table import Table

    stages = [name for name, _ in STAGES]
    columns = (
        "size",
        "engine",
        *stages,
        "total",
        "CPU s",
        "peak MB",
        "PR L1 residual",
        "modularity",
        "× nx",
        "load",
    )
    table = Table(
        title=f"graph rescore from arrays (seed {seed}): wall seconds per stage, load average at the end"
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("size", "engine") else "right")
    for row in rows:
        times = row.get("times")
        if not times:
            table.add_row(row["size"], row["engine"], row["error"], *[""] * (len(columns) - 3))
            continue
        nx_row = next(
            (r for r in rows if r["size"] == row["size"] and r["engine"] == "networkx" and r.get("times")),
            None,
        )
        speedup = ""
        if nx_row is not None and row["engine"] != "networkx":
            common = [s for s in nx_row["times"] if s in times]
            speedup = f"{sum(nx_row['times'][s] for s in common) / sum(times[s] for s in common):.0f}×"
        table.add_row(
            row["size"],
            row["engine"],
            *[f"{times[s]:.2f}" if s in times else "—" for s in stages],
            f"{sum(times.values()):.2f}",
            f"{row['cpu']:.2f}",
            f"{row['peak_mb']:,.0f}",
            f"{row['residual']:.1e}" if "residual" in row else "",
            f"{row['modularity']:.4f}" if "modularity" in row else "",
            speedup,
            f"{row['load']:.1f}",
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10k,100k,1M", help="comma-separated: 10k, 100k, 1M")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated: " + ", ".join(ENGINES))
    parser.add_argument("--nx-cap", type=float, default=600.0, help="seconds before networkx is stopped")
    parser.add_argument("--nx-max", type=int, default=100_000, help="largest graph networkx is run on")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    from rich.console import Console

    console = Console(width=180)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        workdir = Path(tmp)
        for size in args.sizes.split(","):
            n, m = SIZES[size]
            start = time.perf_counter()
            data = generate(n, m, args.seed)
            path = workdir / f"graph-{size}.npz"
            np.savez(path, **data)
            took = time.perf_counter() - start
            console.print(
                f"[dim]{size}: {n:,} customers, {data['src'].shape[0]:,} ties generated in {took:.1f} s[/]"
            )
            graph = from_edges(data["ids"], data["src"], data["dst"], data["weight"])
            for engine in args.engines.split(","):
                if engine == "networkx" and n > args.nx_max:
                    rows.append(
                        {"size": size, "engine": engine, "error": f"skipped above {args.nx_max:,} customers"}
                    )
                    continue
                cap = args.nx_cap if engine == "networkx" else 3600.0
                result = measure(engine, path, workdir, cap)
                quality(result, graph)
                result["size"] = size
                rows.append(result)
                console.print(f"[dim]  {engine}: {result.get('times', result.get('error'))}[/]")
    print_table(console, rows, args.seed)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=float))


if __name__ == "__main__":
    main()
