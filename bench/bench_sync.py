"""Benchmark: sync 100,000 WeChat followers from the simulator into SQLite and PostgreSQL.

The simulator runs in its own process (``python -m scrm simulator``), so it does not share this
process's GIL. Each measured step runs in a fresh child process, which reports its own seconds and
peak RSS:

- **floor**: the same HTTP calls a sync makes (``user/get`` pages, ``user/info/batchget`` 100 at a time
  with the same number of requests in flight, ``tags/get``, the share-reads feed), through the same
  connector, with no store writes: the limit a sync can reach;
- **sync**: ``sync_wechat`` into a fresh database (schema created first, untimed);
- **re-sync**: the same again on the same database (nothing new: it must write nothing).

Usage::

    .venv/bin/python bench/bench_sync.py                       # 100,000 followers, SQLite and PostgreSQL
    .venv/bin/python bench/bench_sync.py --followers 10000 --backends sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

APPID, SECRET = "wxbench0000000001", "bench-secret-not-real"
PG_URL = os.environ.get("SCRM_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _child(mode: str, config: Path) -> dict[str, Any]:
    from connectors.follower_sync import sync_wechat
    from connectors.wechat import WeChatConnector
    from scrm.config import load_settings
    from scrm.store import Store

    settings = load_settings(config)
    if mode == "floor":
        started, cpu = time.perf_counter(), time.process_time()
        _, wechat = WeChatConnector.from_settings(settings)
        followers = reads = 0
        with wechat:
            wechat.tags()
            for page in wechat.followers():
                for start in range(0, len(page.ids), settings.sync.batch_size):
                    chunk = page.ids[start : start + settings.sync.batch_size]
                    followers += sum(1 for batch in wechat.profiles(chunk) for p in batch if p.subscribed)
            for feed in wechat.interactions():
                reads += len(feed.items)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        return {"seconds": seconds, "cpu": cpu, "followers": followers, "reads": reads}
    store = Store(settings.database_url)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        report = sync_wechat(store, settings)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        store.close()
    return {
        "seconds": seconds,
        "cpu": cpu,
        "followers": report.followers,
        "reads": report.share_reads,
        "new": report.new,
        "updated": report.updated,
    }


def _run_child(mode: str, config: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _config(path: Path, url: str, sim: dict[str, Any], concurrency: int, batch_size: int) -> Path:
    path.write_text(
        f"""
[database]
url = "{url}"

[sync]
concurrency = {concurrency}
batch_size = {batch_size}

[accounts.bench]
platform = "wechat"
appid = "{APPID}"
secret = "{SECRET}"
api_base = "{sim["base_url"]}"
share_reads_url = "{sim["share_reads_url"]}"
""",
        encoding="utf-8",
    )
    return path


def _fresh_database(backend: str, workdir: Path) -> str:
    from scrm.store import Store

    if backend == "sqlite":
        db = workdir / "bench.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{db}"
    else:
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS scrm_bench_sync CASCADE")
            conn.execute("CREATE SCHEMA scrm_bench_sync")
        url = f"{PG_URL}?options=-csearch_path%3Dscrm_bench_sync"
    store = Store(url)
    store.upgrade()
    store.close()
    return url


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--followers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "sync")
    parser.add_argument("--child", choices=["floor", "sync"], help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = _child(args.child, args.config)
        result["peak_rss_mb"] = _peak_mb()
        print(json.dumps(result))
        return

    from rich.console import Console
    from rich.table import Table

    args.workdir.mkdir(parents=True, exist_ok=True)
    sim_cmd = [sys.executable, "-m", "scrm", "simulator", "--port", "0", "--json"]
    sim_cmd += [
        "--followers",
        str(args.followers),
        "--seed",
        str(args.seed),
        "--appid",
        APPID,
        "--secret",
        SECRET,
    ]
    simulator = subprocess.Popen(sim_cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert simulator.stdout is not None
        sim = json.loads(simulator.stdout.readline())
        rows: list[tuple[str, str, dict[str, Any]]] = []
        floor_config = _config(
            args.workdir / "floor.toml", "sqlite:///unused.db", sim, args.concurrency, args.batch_size
        )
        floor = _run_child("floor", floor_config)
        rows.append(("-", "floor: the same HTTP calls, no store", floor))
        for backend in args.backends.split(","):
            url = _fresh_database(backend, args.workdir)
            config = _config(args.workdir / f"{backend}.toml", url, sim, args.concurrency, args.batch_size)
            rows.append((backend, "scrm sync wechat", _run_child("sync", config)))
            rows.append((backend, "re-sync (nothing new)", _run_child("sync", config)))
    finally:
        simulator.terminate()
        simulator.wait(10)

    table = Table(
        title=f"sync of {args.followers:,} followers (seed {args.seed}, concurrency {args.concurrency})"
    )
    for column in (
        "backend",
        "step",
        "followers",
        "share reads",
        "seconds",
        "CPU s",
        "followers/s",
        "× floor",
        "peak RSS MB",
        "goal",
    ):
        table.add_column(column, justify="left" if column in ("backend", "step", "goal") else "right")
    for backend, step, r in rows:
        ratio = r["seconds"] / floor["seconds"]
        goal = ""
        if step == "scrm sync wechat":
            fast = "PASS" if r["seconds"] < 15 or backend != "sqlite" else "FAIL"
            goal = f"{'PASS' if ratio <= 1.5 else 'FAIL'} ≤1.5× floor" + (
                f", {fast} <15 s" if backend == "sqlite" else ""
            )
        elif step.startswith("re-sync"):
            goal = "PASS 0 new" if r.get("new") == 0 and r.get("updated") == 0 else "FAIL: wrote"
        table.add_row(
            backend,
            step,
            f"{r['followers']:,}",
            f"{r['reads']:,}",
            f"{r['seconds']:.2f}",
            f"{r['cpu']:.2f}",
            f"{r['followers'] / r['seconds']:,.0f}",
            f"{ratio:.2f}",
            f"{r['peak_rss_mb']:.0f}",
            goal,
        )
    Console(width=160).print(table)
    print(
        "seconds: the sync's own wall clock inside its process (interpreter start-up excluded); "
        "CPU s: that process's CPU time (all its threads; SQLite works inside it, PostgreSQL does not); "
        "× floor: seconds over the floor's seconds"
    )


if __name__ == "__main__":
    main()
