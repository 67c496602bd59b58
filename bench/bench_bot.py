"""The bot under load: safe-mode (AES) text messages from wrk, 10% retried duplicates, 2 server processes.

Side by side in one run, each for the same workload and duration:

- **scrm** (`scrm serve --workers 2`) on SQLite and on PostgreSQL: verifies, decrypts, matches the
  keyword rule, renders its template, stores every message exactly once (``inbound_message`` and an
  ``interaction`` per message, with group commit) and answers encrypted;
- **WeRoBot** (`pip install werobot gunicorn` into ``bench/out/venv-werobot``, never a project
  dependency) with the equivalent keyword rule under ``gunicorn -w 2``, sessions off (and on, with
  ``--werobot-session``: its default SQLite session store);
- **floor**: a bare Starlette endpoint (``bench/bot_floor.py``) that only verifies, decrypts, replies
  and encrypts with wechatpy, storing nothing, under ``uvicorn --workers 2``.

The load is ``wrk`` (Debian: ``apt-get install wrk``) with ``bench/wrk/bot.lua``: every wrk thread
cycles through its own file of pre-encrypted requests, 10% of which re-send (newly signed) one of the
thread's last 200 messages, as WeChat does when an answer is late. After a scrm run the store is
counted: each distinct message sent must be stored exactly once.

    .venv/bin/python bench/bench_bot.py                       # 50 connections, 30 s each
    .venv/bin/python bench/bench_bot.py --duration 5 --only scrm-sqlite floor
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
from wechatpy.crypto import WeChatCrypto

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.wechat_sim.population import Action  # noqa: E402
from connectors.wechat_sim.push import action_xml, original_id, sign  # noqa: E402

OUT = ROOT / "bench" / "out" / "bot"
BIN = ROOT / ".venv" / "bin"
WEROBOT_VENV = ROOT / "bench" / "out" / "venv-werobot"
TOKEN, APPID = "bench-token-0123", "wxbench000000001"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
RULES = """
[bot.rules.help]
match = "exact"
keywords = ["help"]
template = "help.txt.j2"
"""


def _cdata(value: str) -> str:
    return f"<![CDATA[{value}]]>"


def write_workload(threads: int, per_thread: int, seed: int) -> Path:
    """Files requests_<i>.txt of "QUERY<TAB>BODY" lines, and the msgid of each line (cached)."""
    folder = OUT / f"workload-{threads}x{per_thread}-{seed}"
    if (folder / "msgids.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
    to_user = original_id(APPID)
    msgids: list[list[int]] = []
    next_id = 10_000_000_000
    now = int(time.time())
    for t in range(threads):
        ids: list[int] = []
        with (folder / f"requests_{t}.txt").open("w", encoding="utf-8") as out:
            for _ in range(per_thread):
                if ids and rng.random() < 0.10:
                    msgid = rng.choice(ids[-200:])  # WeChat re-sends a message that got no answer in time
                else:
                    next_id += 1
                    msgid = next_id
                ids.append(msgid)
                openid = f"o_bench_{msgid % 5000:05d}"
                xml = action_xml(Action(now, openid, "text", content="help", msgid=msgid), to_user)
                timestamp, nonce = str(now), str(rng.randrange(10**9, 10**10))
                envelope = crypto.encrypt_message(xml, nonce, timestamp)
                encrypt = envelope.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
                msg_sig = envelope.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
                query = (
                    f"signature={sign(TOKEN, timestamp, nonce)}&timestamp={timestamp}&nonce={nonce}"
                    f"&openid={openid}&encrypt_type=aes&msg_signature={msg_sig}"
                )
                head = f"<ToUserName>{_cdata(to_user)}</ToUserName>"
                body = f"<xml>{head}<Encrypt>{_cdata(encrypt)}</Encrypt></xml>"
                out.write(f"{query}\t{body}\n")
        msgids.append(ids)
    (folder / "msgids.json").write_text(json.dumps(msgids))
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[bytes], path: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start within 60 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_wrk(port: int, workload: Path, threads: int, connections: int, duration: int) -> dict[str, object]:
    script = ROOT / "bench" / "wrk" / "bot.lua"
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
        "--",
        "/wechat/brand",
        str(workload),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    result: dict[str, object] = json.loads(line[len("WRK_JSON ") :])
    return result


def distinct_sent(workload: Path, result: dict[str, object]) -> tuple[int, bool]:
    msgids = json.loads((workload / "msgids.json").read_text())
    sent: set[int] = set()
    wrapped = False
    for t in result["threads"]:  # type: ignore[attr-defined]
        ids = msgids[t["id"]]
        wrapped |= t["wrapped"] > 0
        sent.update(ids if t["wrapped"] else ids[: t["position"]])
    return len(sent), wrapped


def scrm_server(backend: str, port: int, pg_url: str) -> tuple[subprocess.Popen[bytes], str]:
    if backend == "sqlite":
        db = OUT / "bench.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{db}"
    else:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS bench_bot CASCADE")
            conn.execute("CREATE SCHEMA bench_bot")
        url = pg_url + ("&" if "?" in pg_url else "?") + "options=-csearch_path%3Dbench_bot"
    config = OUT / f"scrm-{backend}.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n\n[accounts.brand]\nplatform = "wechat"\nappid = "{APPID}"\n'
        f'secret = "bench-secret"\ntoken = "{TOKEN}"\nencoding_aes_key = "{AES_KEY}"\n{RULES}',
        encoding="utf-8",
    )
    env = {**os.environ, "SCRM_CONFIG": str(config)}
    subprocess.run([str(BIN / "scrm"), "init"], env=env, check=True, capture_output=True)
    cmd = [str(BIN / "scrm"), "serve", "--port", str(port), "--workers", "2"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), url


def count_store(url: str) -> tuple[int, int]:
    if url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(url[len("sqlite:///") :]) as conn:
            a = conn.execute("SELECT count(*) FROM inbound_message").fetchone()[0]
            b = conn.execute("SELECT count(*) FROM interaction").fetchone()[0]
        return int(a), int(b)
    with psycopg.connect(url.split("?")[0], options="-csearch_path=bench_bot") as conn:
        a = conn.execute("SELECT count(*) FROM inbound_message").fetchone()[0]  # type: ignore[index]
        b = conn.execute("SELECT count(*) FROM interaction").fetchone()[0]  # type: ignore[index]
    return int(a), int(b)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--per-thread", type=int, default=200_000, help="pre-encrypted requests per wrk thread"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--werobot-session", action="store_true", help="also WeRoBot with its session store")
    parser.add_argument(
        "--only",
        nargs="*",
        default=["floor", "werobot", "scrm-sqlite", "scrm-postgresql"],
        help="which servers: floor werobot werobot-session scrm-sqlite scrm-postgresql",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: `apt-get install wrk` (Debian/Ubuntu) or build it from github.com/wg/wrk")
    servers = list(args.only) + (["werobot-session"] if args.werobot_session else [])
    if any(s.startswith("werobot") for s in servers) and not (WEROBOT_VENV / "bin" / "gunicorn").exists():
        sys.exit(
            f"WeRoBot is not installed: python3 -m venv {WEROBOT_VENV} && "
            f"{WEROBOT_VENV}/bin/pip install werobot gunicorn cryptography"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    workload = write_workload(args.threads, args.per_thread, args.seed)
    print(f"workload: {args.threads} x {args.per_thread:,} requests ({time.monotonic() - started:.0f} s)")
    env = {**os.environ, "BOT_TOKEN": TOKEN, "BOT_AES_KEY": AES_KEY, "BOT_APPID": APPID}
    rows = []
    for name in servers:
        port = free_port()
        url = ""
        if name == "floor":
            cmd = [
                str(BIN / "uvicorn"),
                "--app-dir",
                str(ROOT / "bench"),
                "bot_floor:app",
                "--port",
                str(port),
                "--workers",
                "2",
                "--log-level",
                "warning",
                "--no-access-log",
            ]
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elif name.startswith("werobot"):
            session = {"BOT_SESSION": "1" if name == "werobot-session" else "0"}
            cmd = [
                str(WEROBOT_VENV / "bin" / "gunicorn"),
                "-w",
                "2",
                "-b",
                f"127.0.0.1:{port}",
                "--chdir",
                str(OUT),
                "--pythonpath",
                str(ROOT / "bench"),
                "werobot_app:app",
            ]
            proc = subprocess.Popen(
                cmd, env={**env, **session}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        else:
            proc, url = scrm_server(name.removeprefix("scrm-"), port, args.pg_url)
        try:
            wait_ready(port, proc, "/healthz" if name.startswith("scrm") else "/")
            result = run_wrk(port, workload, args.threads, args.connections, args.duration)
        finally:
            stop(proc)
        sent, wrapped = distinct_sent(workload, result)
        stored = handled = None
        if url:
            stored, handled = count_store(url)
        seconds = int(result["duration_us"]) / 1e6  # type: ignore[call-overload]
        errors = sum(int(result[k]) for k in ("connect", "read", "write", "status", "timeout"))  # type: ignore[call-overload]
        rows.append(
            (
                name,
                int(result["requests"]) / seconds,
                int(result["p50_us"]) / 1000,  # type: ignore[call-overload]
                int(result["p99_us"]) / 1000,
                errors,
                int(result["requests"]),
                sent,
                stored,
                handled,
                wrapped,
            )  # type: ignore[call-overload]
        )
    floor = next((r[1] for r in rows if r[0] == "floor"), None)
    print(
        f"\n{args.connections} connections, {args.duration} s each, 10% retried duplicates, "
        "2 server processes"
    )
    head = f"{'server':<17}{'req/s':>8}{'x floor':>8}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}{'requests':>10}"
    print(head + f"{'distinct':>10}{'stored':>9}{'handled':>9}")
    for name, rps, p50, p99, errors, requests, sent, stored, handled, wrapped in rows:
        ratio = f"{rps / floor:.2f}" if floor else "-"
        counts = [str(v) if v is not None else "-" for v in (stored, handled)]
        tail = f"{sent:>10,}{counts[0]:>9}{counts[1]:>9}"
        print(
            f"{name:<17}{rps:>8,.0f}{ratio:>8}{p50:>8.1f}{p99:>8.1f}{errors:>7}{requests:>10,}"
            + tail
            + ("  (workload wrapped: raise --per-thread)" if wrapped else "")
        )
    print(
        "distinct: messages sent (retries counted once); stored: inbound_message rows; "
        "handled: interaction rows"
    )


if __name__ == "__main__":
    main()
