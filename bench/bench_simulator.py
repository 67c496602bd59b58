"""How fast the WeChat simulator generates a population and answers a full follower pull.

The simulator must not be the bottleneck of the 100,000-follower sync benchmark (bench_sync.py). This
measures, for N followers: generating the population in-process, and against ``scrm simulator`` run as
a child process (its own interpreter, as bench_sync runs it): the start-up until it accepts requests,
listing every follower (``user/get``, 10,000 a page) and fetching every profile (``user/info/batchget``,
100 a call) with 1 and with several client threads, each with its own ``requests`` session. No store
writes: this is the floor any sync stands on.

    .venv/bin/python bench/bench_simulator.py [--followers 100000] [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.wechat_sim import generate_population  # noqa: E402


def start_child(followers: int, seed: int) -> tuple[subprocess.Popen[str], dict[str, Any], float]:
    began = time.perf_counter()
    cmd = [sys.executable, "-m", "scrm", "simulator", "--port", "0", "--json"]
    cmd += ["--followers", str(followers), "--seed", str(seed)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert child.stdout is not None
    info = json.loads(child.stdout.readline())
    return child, info, time.perf_counter() - began


def token(info: dict[str, Any]) -> str:
    params = {"grant_type": "client_credential", "appid": info["appid"], "secret": info["secret"]}
    value: str = requests.get(info["api_base"] + "token", params=params, timeout=30).json()["access_token"]
    return value


def list_followers(info: dict[str, Any], access_token: str) -> list[str]:
    session, openids, next_openid = requests.Session(), [], ""
    while True:
        params = {"access_token": access_token, "next_openid": next_openid}
        page = session.get(info["api_base"] + "user/get", params=params, timeout=30).json()
        if "data" not in page:
            return openids
        openids += page["data"]["openid"]
        next_openid = page["next_openid"]


def fetch_profiles(info: dict[str, Any], access_token: str, openids: list[str], threads: int) -> int:
    local = threading.local()
    url = info["api_base"] + "user/info/batchget"

    def one(chunk: list[str]) -> int:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        body = json.dumps({"user_list": [{"openid": o} for o in chunk]}).encode()
        answer = local.session.post(url, params={"access_token": access_token}, data=body, timeout=30).json()
        return len(answer["user_info_list"])

    chunks = [openids[k : k + 100] for k in range(0, len(openids), 100)]
    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(one, chunks))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--followers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    rows: list[tuple[str, str, float, str]] = []

    began = time.perf_counter()
    pop = generate_population(args.followers, seed=args.seed)
    rows.append(("generate (in-process)", f"{len(pop):,} followers", time.perf_counter() - began, ""))
    del pop

    child, info, startup = start_child(args.followers, args.seed)
    try:
        began = time.perf_counter()
        access_token = token(info)  # waits in the listen backlog until the server serves
        rows.append(
            ("scrm simulator start-up", "until the first answer", startup + time.perf_counter() - began, "")
        )
        began = time.perf_counter()
        openids = list_followers(info, access_token)
        took = time.perf_counter() - began
        rows.append(
            ("user/get, all pages", f"{len(openids):,} openids", took, f"{len(openids) / took:,.0f}/s")
        )
        for threads in sorted({1, args.threads}):
            began = time.perf_counter()
            got = fetch_profiles(info, access_token, openids, threads)
            took = time.perf_counter() - began
            calls = (len(openids) + 99) // 100
            rows.append(
                (
                    f"batchget, {threads} thread(s)",
                    f"{got:,} profiles, {calls:,} calls",
                    took,
                    f"{got / took:,.0f}/s, {calls / took:,.0f} calls/s",
                )
            )
    finally:
        child.terminate()
        child.wait(10)

    table = Table(title=f"WeChat simulator: {args.followers:,} followers, seed {args.seed}")
    for name, justify in (("step", "left"), ("what", "left"), ("seconds", "right"), ("rate", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for step, what, seconds, rate in rows:
        table.add_row(step, what, f"{seconds:.2f}", rate)
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
