"""Benchmark: sync a WeCom corp of 10,000 customer groups and 500,000 memberships into the store.

The WeCom simulator runs in its own process (this script with ``--serve``), so it does not share the
sync's GIL. Each measured step runs in a fresh child process, which reports its own seconds and peak
RSS:

- **floor**: the same HTTP calls a sync makes (``batch/get_by_user`` pages of every permitted staff
  member, ``groupchat/list`` pages, ``groupchat/get`` per group with the same number of requests in
  flight, ``user/simplelist``), through the same connector, with no store writes;
- **sync**: ``sync_wecom`` into a fresh database (schema created first, untimed);
- **re-sync**: the same again on the same database (nothing new: it must write nothing).

Usage::

    .venv/bin/python bench/bench_wecom.py                     # 10,000 groups, 500,000 memberships
    .venv/bin/python bench/bench_wecom.py --groups 1000 --memberships 50000 --backends sqlite
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_sync import _fresh_database, _peak_mb  # noqa: E402  (a fresh SQLite file or PostgreSQL schema)

SECRET = "bench-secret-not-real"


def _serve(args: argparse.Namespace) -> None:
    from connectors.wecom_sim import WeComSimulator, generate_wecom_population

    started = time.perf_counter()
    pop = generate_wecom_population(
        args.contacts, groups=args.groups, memberships=args.memberships, seed=args.seed
    )
    generated = time.perf_counter() - started
    sim = WeComSimulator(pop, secret=SECRET)
    sim.bind()
    info = {"base_url": sim.base_url, "corpid": sim.corpid, "events_url": sim.events_url}
    print(json.dumps({**info, "memberships": pop.memberships, "generate_seconds": generated}), flush=True)
    sim.serve_forever()


def _child(mode: str, config: Path) -> dict[str, Any]:
    from connectors.wecom import WeComConnector
    from connectors.wecom_sync import sync_wecom
    from scrm.config import load_settings
    from scrm.store import Store

    settings = load_settings(config)
    if mode == "floor":
        started = time.perf_counter()
        _, corp = WeComConnector.from_settings(settings)
        with corp:
            contacts = sum(len(page.contacts) for page in corp.contacts())
            corp.staff()
            groups = members = 0
            for page in corp.groups():
                for start in range(0, len(page.ids), 200):
                    for batch in corp.group_details(page.ids[start : start + 200]):
                        groups += len(batch)
                        members += sum(1 for g in batch for m in g.members if m.is_customer)
            events = sum(len(p.items) for p in corp.contact_events())
        seconds = time.perf_counter() - started
        return {
            "seconds": seconds,
            "contacts": contacts,
            "groups": groups,
            "members": members,
            "events": events,
        }
    store = Store(settings.database_url)
    try:
        started = time.perf_counter()
        report = sync_wecom(store, settings)
        seconds = time.perf_counter() - started
    finally:
        store.close()
    return {
        "seconds": seconds,
        "contacts": report.contacts,
        "groups": report.groups,
        "members": report.joined,
        "events": report.events,
        "written": report.staff_contacts + report.joined + report.left + report.invitations + report.events,
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
    result = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"  {mode}: {result['seconds']:.1f} s", file=sys.stderr)
    return result


def _config(path: Path, url: str, sim: dict[str, Any], concurrency: int, batch_size: int) -> Path:
    path.write_text(
        f"""
[database]
url = "{url}"

[sync]
concurrency = {concurrency}
batch_size = {batch_size}

[accounts.bench]
platform = "wecom"
corpid = "{sim["corpid"]}"
secret = "{SECRET}"
api_base = "{sim["base_url"]}"
events_url = "{sim["events_url"]}"
""",
        encoding="utf-8",
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--memberships", type=int, default=500_000)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "wecom")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["floor", "sync"], help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args)
        return
    if args.child:
        result = _child(args.child, args.config)
        result["peak_rss_mb"] = _peak_mb()
        print(json.dumps(result))
        return

    from rich.console import Console
    from rich.table import Table

    args.workdir.mkdir(parents=True, exist_ok=True)
    sim_cmd = [
        sys.executable,
        __file__,
        "--serve",
        "--seed",
        str(args.seed),
        "--contacts",
        str(args.contacts),
    ]
    sim_cmd += ["--groups", str(args.groups), "--memberships", str(args.memberships)]
    simulator = subprocess.Popen(sim_cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert simulator.stdout is not None
        sim = json.loads(simulator.stdout.readline())
        rows: list[tuple[str, str, dict[str, Any]]] = []
        floor = _run_child(
            "floor",
            _config(
                args.workdir / "floor.toml", "sqlite:///unused.db", sim, args.concurrency, args.batch_size
            ),
        )
        rows.append(("-", "floor: the same HTTP calls, no store", floor))
        for backend in args.backends.split(","):
            url = _fresh_database(backend, args.workdir)
            config = _config(args.workdir / f"{backend}.toml", url, sim, args.concurrency, args.batch_size)
            rows.append((backend, "scrm sync wecom", _run_child("sync", config)))
            rows.append((backend, "re-sync (nothing new)", _run_child("sync", config)))
    finally:
        simulator.terminate()
        simulator.wait(10)

    table = Table(
        title=f"WeCom sync: {args.groups:,} groups, {sim['memberships']:,} memberships (staff included), "
        f"{args.contacts:,} contacts (seed {args.seed}, concurrency {args.concurrency})"
    )
    columns = (
        "backend",
        "step",
        "contacts",
        "groups",
        "customer members",
        "seconds",
        "members/s",
        "× floor",
        "peak RSS MB",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("backend", "step") else "right")
    for backend, step, r in rows:
        members = r["members"] if step != "re-sync (nothing new)" else floor["members"]
        table.add_row(
            backend,
            step
            + (f" (wrote {r['written']:,} rows)" if "written" in r and step.startswith("re-sync") else ""),
            f"{r['contacts']:,}",
            f"{r['groups']:,}",
            f"{r['members']:,}",
            f"{r['seconds']:.1f}",
            f"{members / r['seconds']:,.0f}",
            f"{r['seconds'] / floor['seconds']:.2f}",
            f"{r['peak_rss_mb']:.0f}",
        )
    Console(width=170).print(table)
    print(
        f"simulator: population generated in {sim['generate_seconds']:.1f} s in its own process; "
        "seconds: each "
        "step's own wall clock inside its process (interpreter start-up excluded); × floor: over the floor's"
    )


if __name__ == "__main__":
    main()
