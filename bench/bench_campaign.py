"""A campaign to N followers through the simulator, beside the raw floor, and a kill -9 at a random point.

Setup (untimed): ``scrm simulator`` in a child process with N followers, ``scrm init`` and a follower
sync into a fresh SQLite (or PostgreSQL) store. Then, each in a child process of its own (so its peak
RSS is its own), with the same connector and ``[campaigns] concurrency`` threads:

- **floor**: the same template sends to the same followers, without planning or store writes;
- **campaign**: ``scrm campaign run bulk`` (plan, render, store the deliveries, claim, send, record);
- **kill -9**: a second run of the campaign (a new run key) killed at a random point (seeded), then run
  again; the simulator's request log is read back: no follower may have received it twice, and every
  planned follower must have it or be reported ``unknown`` (in doubt when the process died).

    .venv/bin/python bench/bench_campaign.py [--followers 100000] [--concurrency 8] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CAMPAIGN = """
[campaign]
name = "bulk"
action = "template"
template_id = "TPL_EVENT"
[campaign.fields]
first = "Hello {{ openid[-6:] }}"
keyword1 = "Spring sale"
[audience]
subscribed = true
"""


def start_simulator(followers: int, seed: int) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    cmd = [sys.executable, "-m", "scrm", "simulator", "--port", "0", "--json"]
    cmd += ["--followers", str(followers), "--seed", str(seed)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert child.stdout is not None
    return child, json.loads(child.stdout.readline())


def write_config(work: Path, url: str, info: dict[str, Any], concurrency: int) -> Path:
    (work / "campaigns.d").mkdir(exist_ok=True)
    (work / "campaigns.d" / "bulk.toml").write_text(CAMPAIGN, encoding="utf-8")
    path = work / "config.toml"
    path.write_text(
        f"""
[database]
url = "{url}"
[campaigns]
folder = "campaigns.d"
concurrency = {concurrency}
max_messages_per_week = 100
quiet_hours_start = "00:00"
quiet_hours_end = "00:00"
template_quota_per_day = 10000000
[sync]
concurrency = 4
[accounts.brand]
platform = "wechat"
appid = "{info["appid"]}"
secret = "{info["secret"]}"
api_base = "{info["base_url"]}"
""",
        encoding="utf-8",
    )
    return path


def clear_quota(info: dict[str, Any]) -> None:
    params = {"grant_type": "client_credential", "appid": info["appid"], "secret": info["secret"]}
    token = requests.get(info["api_base"] + "token", params=params, timeout=30).json()["access_token"]
    requests.post(
        info["api_base"] + "clear_quota",
        params={"access_token": token},
        json={"appid": info["appid"]},
        timeout=30,
    )


def log_since(info: dict[str, Any], since: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = requests.get(
        info["base_url"] + "/_sim/requests", params={"since": since}, timeout=120
    ).json()["requests"]
    return entries


def child_floor(config: Path) -> None:
    """Child: the raw floor: the same sends, threads and connector, no planning, no store."""
    from connectors.wechat import WeChatConnector
    from scrm.config import load_settings
    from scrm.models import Follow, Identity
    from scrm.store import Store

    settings = load_settings(config)
    store = Store(settings.database_url)
    i, f = Identity.__table__, Follow.__table__  # type: ignore[attr-defined]
    with store.connect() as conn:
        openids = list(
            conn.execute(
                sa.select(i.c.value)
                .join(f, f.c.customer_id == i.c.customer_id)
                .where(i.c.kind == "openid", f.c.unsubscribed_at.is_(None))
                .order_by(i.c.customer_id)
            ).scalars()
        )
    _, connector = WeChatConnector.from_settings(settings)
    began = time.perf_counter()
    with connector, ThreadPoolExecutor(settings.campaigns.concurrency) as pool:
        fields = {"first": "Hello", "keyword1": "Spring sale"}
        list(
            pool.map(
                lambda o: connector.send_template(o, "TPL_EVENT", {**fields, "first": f"Hello {o[-6:]}"}),
                openids,
            )
        )
    seconds = time.perf_counter() - began
    print(json.dumps({"sent": len(openids), "seconds": seconds}))


def run_cli(config: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "scrm", "--config", str(config), "campaign", "run", "bulk", *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def timed(popen: subprocess.Popen[str]) -> tuple[str, float, float]:
    """(stdout, wall seconds, peak RSS in MB) of a child run to its end."""
    began = time.perf_counter()
    _, status, usage = os.wait4(popen.pid, 0)
    wall = time.perf_counter() - began
    popen.returncode = os.waitstatus_to_exitcode(status)
    out = popen.stdout.read() if popen.stdout else ""
    if popen.returncode != 0:
        raise SystemExit(f"child failed ({popen.returncode}): {out[-2000:]}")
    return out, wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database", default="", help="a database URL (default: a fresh SQLite file)")
    parser.add_argument("--child", choices=["floor"], help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "floor":
        child_floor(args.config)
        return

    from connectors.follower_sync import sync_wechat
    from scrm.config import load_settings
    from scrm.models import Delivery
    from scrm.store import Store

    console = Console(width=120)
    work = Path(tempfile.mkdtemp(prefix="bench-campaign-"))
    sim, info = start_simulator(args.followers, args.seed)
    try:
        url = args.database or f"sqlite:///{work / 'scrm.db'}"
        config = write_config(work, url, info, args.concurrency)
        settings = load_settings(config)
        store = Store(settings.database_url)
        store.upgrade()
        began = time.perf_counter()
        sync_wechat(store, settings)
        console.print(
            f"setup: {args.followers:,} followers synced in {time.perf_counter() - began:.1f} s ({work})"
        )

        floor = subprocess.Popen(
            [sys.executable, __file__, "--child", "floor", "--config", str(config)],
            stdout=subprocess.PIPE,
            text=True,
        )
        out, floor_wall, floor_rss = timed(floor)  # type: ignore[arg-type]
        floor_result = json.loads(out.strip().splitlines()[-1])
        console.print(f"floor: {floor_wall:.1f} s")
        clear_quota(info)

        start_log = len(log_since(info, 0))
        out, camp_wall, camp_rss = timed(run_cli(config, "--at", "2026-01-01 10:00", "--json"))
        result = json.loads(out)
        sent = result["status"].get("sent", 0)
        console.print(f"campaign: {camp_wall:.1f} s")
        clear_quota(info)

        # kill -9 at a random point of a second run, then run it again
        log_start = len(log_since(info, 0))
        rng = random.Random(args.seed)
        target = rng.randint(1, max(1, sent - 1))  # kill after this many sends of the second run
        victim = run_cli(config, "--at", "2026-01-02 10:00", "--json")
        seen, began = log_start, time.perf_counter()
        while seen - log_start < target and victim.poll() is None:
            time.sleep(0.05)
            seen += len(log_since(info, seen))
        delay = time.perf_counter() - began
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        if victim.stdout:
            victim.stdout.close()
        killed_log = len(log_since(info, 0)) - log_start
        out, _, _ = timed(run_cli(config, "--at", "2026-01-02 10:00", "--json"))
        again = json.loads(out)
        entries = [
            e
            for e in log_since(info, log_start)
            if e["path"].endswith("message/template/send") and not e.get("errcode")
        ]
        received = Counter((e.get("json") or {}).get("touser") for e in entries)
        d = Delivery.__table__  # type: ignore[attr-defined]
        with store.connect() as conn:
            run_id = conn.execute(
                sa.text("SELECT id FROM campaign_run WHERE run_key = :k"), {"k": again["run_key"]}
            ).scalar()
            rows = conn.execute(sa.select(d.c.openid, d.c.status).where(d.c.run_id == run_id)).all()
        planned = {o for o, s in rows if s in ("sent", "unknown")}
        unknown = {o for o, s in rows if s == "unknown"}
        duplicates = sum(n - 1 for n in received.values() if n > 1)
        missed = len(planned - set(received) - unknown)
        store.close()
    finally:
        sim.send_signal(signal.SIGINT)
        sim.wait(30)
        if sim.stdout:
            sim.stdout.close()

    backend = url.split(":")[0]
    table = Table(
        title=f"Campaign to {args.followers:,} followers, {args.concurrency} send threads ({backend})"
    )
    for col in ("run", "deliveries", "seconds", "deliveries/s", "peak RSS MB", "vs floor"):
        table.add_column(col, justify="right" if col != "run" else "left")
    n_floor = floor_result["sent"]
    table.add_row(
        "raw floor (sends only)",
        f"{n_floor:,}",
        f"{floor_wall:.1f}",
        f"{n_floor / floor_wall:,.0f}",
        f"{floor_rss:.0f}",
        "1.00x",
    )
    table.add_row(
        "scrm campaign run",
        f"{sent:,}",
        f"{camp_wall:.1f}",
        f"{sent / camp_wall:,.0f}",
        f"{camp_rss:.0f}",
        f"{camp_wall / floor_wall:.2f}x",
    )
    console.print(table)
    start_up = camp_wall - result["seconds"]
    console.print(
        f"campaign: {result['plan_seconds']:.1f} s planning (query, decide, render, store), "
        f"{result['seconds'] - result['plan_seconds']:.1f} s sending, {start_up:.1f} s start-up; "
        f"request log before it: {start_log:,}"
    )
    console.print(
        f"kill -9 after {delay:.1f} s ({killed_log:,} requests of the second run by then), run again: "
        f"{len(received):,} followers received it, {duplicates} duplicates, "
        f"{len(unknown)} in doubt (unknown, not resent), {missed} missed"
    )


if __name__ == "__main__":
    main()
