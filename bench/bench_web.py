"""The leaderboard and customer pages with a million customers in the store, on SQLite and PostgreSQL.

``.venv/bin/python bench/bench_web.py`` (1,000,000 customers, both backends) or ``--customers 10000``
for a quick run, ``--backends sqlite``, ``--requests 500``, ``--rebuild`` (ignore the cached store),
``--json PATH`` (also write the rows). The store is built by :mod:`web_store` (bulk, seeded, cached
under ``bench/out/web/`` and in a PostgreSQL schema: the first build of 1M takes minutes, later runs
reuse it). Then :func:`scrm.web.create_app` is served by uvicorn (one worker, ``scrm serve``'s
defaults) in a child process, and one client asks, one request at a time, for:

* the API: ``/api/v1/leaderboard`` (first page, a deep page at offset N/10, a random community's
  first page, and ranked by influence) and ``/api/v1/customers/{id}`` and ``.../explain`` for random
  customers;
* the dashboard, signed in as a viewer: ``/leaderboard`` (the same four) and ``/customers/{id}`` for
  random customers; and, for information only (10 requests, outside the goal), ``/overview``,
  ``/communities`` and ``/funnel``.

Every request is timed from send to the last byte of the answer (httpx on keep-alive connections).
The first request of each page is timed on its own (``first ms``: it reads the run's ranking into
the server's memory, :mod:`graph.rankings`), then 9 more warm up and ``--requests`` are timed: the
table gives their p50 / p95 / p99 / max in milliseconds, with the goal (p99 < 200 ms). A page the
app does not serve (404 on its first request) is listed as such. The load average of the machine is
printed with the figures: other work on the machine shows in the tail.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from web_store import GIVEN, SURNAMES, cached_store

from scrm.access import create_token, create_user
from scrm.config import load_settings
from scrm.store import Store

GOAL_MS = 200.0
BENCH_USER, BENCH_PASSWORD = "bench-viewer", "bench-password-not-secret"


@dataclass(frozen=True)
class Scenario:
    """A page to time: its label, how to make the i-th path, and whether it is a dashboard page."""

    label: str
    path: str  # with {id} (a random customer), {community} (a random one), {deep} / {deep_page}
    dashboard: bool = False
    goal: bool = True  # False: timed for information (10 requests), outside the goal


SCENARIOS = (
    Scenario("API leaderboard, first page", "/api/v1/leaderboard?limit=50"),
    Scenario("API leaderboard, deep page", "/api/v1/leaderboard?limit=50&offset={deep}"),
    Scenario("API leaderboard, a community", "/api/v1/leaderboard?limit=50&community={community}"),
    Scenario("API leaderboard by influence", "/api/v1/leaderboard?limit=50&by=influence"),
    Scenario("API customer 360", "/api/v1/customers/{id}"),
    Scenario("API customer explain", "/api/v1/customers/{id}/explain"),
    Scenario("page /leaderboard", "/leaderboard", dashboard=True),
    Scenario("page /leaderboard, deep", "/leaderboard?page={deep_page}", dashboard=True),
    Scenario("page /leaderboard, a community", "/leaderboard?community={community}", dashboard=True),
    Scenario("page /leaderboard by influence", "/leaderboard?by=influence", dashboard=True),
    Scenario("page /customers/{id}", "/customers/{id}", dashboard=True),
    Scenario("page /overview (no goal)", "/overview", dashboard=True, goal=False),
    Scenario("page /communities (no goal)", "/communities", dashboard=True, goal=False),
    Scenario("API funnel", "/api/v1/funnel"),
    Scenario("page /funnel", "/funnel", dashboard=True),
    Scenario("API search: a whole phone", "/api/v1/customers?q=%2B86138{id:08d}"),
    Scenario("API search: part of a phone", "/api/v1/customers?q=138{id:08d}"),
    Scenario("API search: a phone's last 6 digits", "/api/v1/customers?q={tail6}"),
    Scenario("API search: an openid", "/api/v1/customers?q=obench{id:010d}"),
    Scenario("API search: a Chinese name's start", "/api/v1/customers?q={name2}"),
    Scenario("API search: part of a Chinese name", "/api/v1/customers?q={given}{mod97}"),
    Scenario("API search: part of a Latin name", "/api/v1/customers?q=customer+{id}"),
    Scenario("page search: /customers?q= part of a phone", "/customers?q=138{id:08d}", dashboard=True),
    Scenario("page search: /customers?q= a Chinese name's start", "/customers?q={name2}", dashboard=True),
)


def serve_child(url: str, port: int) -> None:
    """Runs in the child: the whole web app on 127.0.0.1:port until killed."""
    import uvicorn

    from scrm.web import create_app

    settings = load_settings(None, environ={"SCRM_DATABASE__URL": url})
    app = create_app(settings)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait(base: str, child: subprocess.Popen[bytes], seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"the server exited with {child.returncode}")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("the server did not answer /healthz")


def _login(client: httpx.Client) -> bool:
    """Log the dashboard client in as the bench viewer; False when there is no login page."""
    page = client.get("/login")
    if page.status_code == 404:
        return False
    form = {"username": BENCH_USER, "password": BENCH_PASSWORD}
    token = _csrf(page.text)
    if token:
        form["csrf_token"] = token
    answer = client.post("/login", data=form, follow_redirects=True)
    return answer.status_code == 200 and "/login" not in str(answer.url)


def _csrf(html: str) -> str:
    marker = 'name="csrf_token" value="'
    start = html.find(marker)
    if start < 0:
        return ""
    start += len(marker)
    return html[start : html.find('"', start)]


def _percentiles(ms: list[float]) -> dict[str, float]:
    values = np.asarray(ms)
    return {
        "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)),
        "p99": float(np.percentile(values, 99)),
        "max": float(values.max()),
    }


def measure(
    url: str, n: int, requests: int, seed: int, scenarios: tuple[Scenario, ...] = SCENARIOS
) -> list[dict[str, Any]]:
    """Serve the store at ``url`` and time every scenario; one row per scenario."""
    store = Store(url)
    token = create_token(store, f"bench-{os.getpid()}", "viewer")
    create_user(store, BENCH_USER, BENCH_PASSWORD, "viewer")  # or reset it, in a cached store
    store.close()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    child = subprocess.Popen([sys.executable, __file__, "--serve-child", url, "--port", str(port)])
    rows: list[dict[str, Any]] = []
    try:
        _wait(base, child)
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        web = httpx.Client(base_url=base, timeout=60)
        logged_in = _login(web)
        rng = np.random.default_rng(seed)
        for scenario in scenarios:
            client = web if scenario.dashboard else api
            if scenario.dashboard and not logged_in:
                rows.append({"page": scenario.label, "status": "no login page"})
                continue
            timed = requests if scenario.goal else min(requests, 10)
            ids = rng.integers(1, n + 1, timed + 10).tolist()
            communities = max(1, n // 200)
            paths = [
                scenario.path.format(
                    id=i,
                    community=i % communities,
                    deep=n // 10,
                    deep_page=n // 10 // 50 + 1,
                    tail6=f"{i:08d}"[-6:],
                    mod97=i % 97,
                    given=GIVEN[i % len(GIVEN)],
                    name2=SURNAMES[i % len(SURNAMES)] + GIVEN[(i // 7) % len(GIVEN)],
                )
                for i in ids
            ]
            start = time.perf_counter()
            first = client.get(paths[0])
            first_ms = (time.perf_counter() - start) * 1000
            if first.status_code == 404 and "Not Found" in first.text:  # no such route (yet)
                rows.append({"page": scenario.label, "status": "not served (404)"})
                continue
            warm_up = paths[1 : 1 + min(9, timed)] if scenario.goal else paths[1:2]
            for path in warm_up:  # connections, caches
                client.get(path)
            ms, statuses = [], set()
            for path in paths[-timed:]:
                start = time.perf_counter()
                answer = client.get(path)
                ms.append((time.perf_counter() - start) * 1000)
                statuses.add(answer.status_code)
            bad = sorted(s for s in statuses if s != 200)  # a redirect (to /login) is a failure too
            rows.append(
                {
                    "page": scenario.label,
                    "requests": len(ms),
                    "errors": bad,
                    "status": "ok",
                    "first": first_ms,
                    "goal": scenario.goal,
                    **_percentiles(ms),
                }
            )
        api.close()
        web.close()
    finally:
        child.terminate()
        child.wait(10)
    return rows


def _render(console: Console, results: dict[str, list[dict[str, Any]]], n: int) -> None:
    table = Table(title=f"scrm web pages: {n:,} customers in the store, one client, keep-alive")
    for column in ("backend", "page", "first ms", "requests", "p50 ms", "p95 ms", "p99 ms", "max ms", "goal"):
        table.add_column(column, justify="left" if column in ("backend", "page", "goal") else "right")
    for backend, rows in results.items():
        for row in rows:
            if row["status"] != "ok":
                table.add_row(backend, row["page"], "", "", "", "", "", "", row["status"])
                continue
            verdict = "PASS" if row["p99"] < GOAL_MS and not row["errors"] else "FAIL"
            verdict = verdict if row["goal"] else "(info)"
            note = f" (HTTP {row['errors']})" if row["errors"] else ""
            table.add_row(
                backend, row["page"], f"{row['first']:.0f}", str(row["requests"]),
                *(f"{row[k]:.1f}" for k in ("p50", "p95", "p99", "max")), f"{verdict}{note}",
            )  # fmt: skip
        table.add_section()
    console.print(table)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    console.print(
        f"goal: p99 < {GOAL_MS:.0f} ms · load average {load} on {os.cpu_count()} CPUs · "
        f"{datetime.now(UTC):%Y-%m-%dT%H:%M}Z"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--requests", type=int, default=300, help="timed requests per page (default 300)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rebuild", action="store_true", help="build the store again even if cached")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument("--pages", help="only the pages whose label contains this text (e.g. 'search')")
    parser.add_argument("--serve-child", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_child:
        serve_child(args.serve_child, args.port)
        return
    console = Console(width=140)
    results: dict[str, list[dict[str, Any]]] = {}
    for backend in args.backends.split(","):
        url = cached_store(backend, args.customers, args.seed, rebuild=args.rebuild, log=console.print)
        chosen = tuple(s for s in SCENARIOS if not args.pages or args.pages in s.label)
        results[backend] = measure(url, args.customers, args.requests, args.seed, chosen)
    _render(console, results, args.customers)
    if args.json:
        args.json.write_text(json.dumps({"customers": args.customers, "results": results}, indent=2))


if __name__ == "__main__":
    main()
