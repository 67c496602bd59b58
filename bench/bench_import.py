"""Benchmark ``scrm import purchases`` against the database's own bulk-write rate.

For each backend (SQLite, PostgreSQL) it runs, on a fresh database created with ``scrm init``:

1. ``scrm import purchases FILE --json`` as a child process: wall-clock seconds (startup included),
   the import's own ``seconds``, and the child's peak RSS;
2. the same command again (a re-import, which must store 0 new rows);
3. the floor ("the limit"): the same rows, already parsed into tuples, written by raw
   ``sqlite3.executemany`` in one transaction (the pragmas scrm uses), or by psycopg 3
   ``COPY purchase (...) FROM STDIN`` with ``write_row``, into a fresh ``scrm init`` database that
   holds just the customers the rows point to. Only the write (and its commit) is timed; parsing
   the CSV into tuples is reported beside it.

Goals (from the issue): scrm's wall-clock rate at least half the floor's write-only rate, and peak
RSS under 500 MB (10^6 bytes). Run ``python bench/bench_import.py --help`` for the options and see
``bench/README.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from scrm.store import SQLITE_PRAGMAS  # the floor's connection is set up as scrm's

Backend = Literal["sqlite", "postgresql"]
BACKENDS: tuple[Backend, ...] = ("sqlite", "postgresql")

SOURCE = "shop"  # the generator's shop and the import's default --source
RATE_GOAL = 0.5  # scrm's rate / the floor's write-only rate
RSS_GOAL_MB = 500.0
EXIT_REJECTED = 3  # scrm's exit code for "done, but some rows were rejected"
COLUMNS = ("source", "order_id", "customer_id", "amount_minor", "currency", "occurred_at")
SQLITE_INSERT = f"INSERT INTO purchase ({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)"
PG_COPY = f"COPY purchase ({', '.join(COLUMNS)}) FROM STDIN"
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_WORKDIR = Path(__file__).resolve().parent / "out"

CONFIG = """\
# Written by bench/bench_import.py: one database, one WeChat account (the orders' openids).
[scrm]
timezone = "Asia/Shanghai"

[database]
url = "{url}"

[accounts.bench]
platform = "wechat"
appid = "wxbench00000000001"
secret = "bench-secret-not-real"
"""

# Runs a command and reports its wall time and peak RSS. It is started as a small fresh Python
# process because Linux counts a parent's resident memory at fork/exec into the child's ru_maxrss;
# spawning from this tiny process keeps the bench's own memory out of the measurement.
_MEASURE = """\
import json, os, subprocess, sys, time
report, out, err, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with open(out, "wb") as stdout, open(err, "wb") as stderr:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
proc.returncode = os.waitstatus_to_exitcode(status)
scale = 1 if sys.platform == "darwin" else 1024
with open(report, "w") as f:
    json.dump({"rc": proc.returncode, "seconds": seconds, "peak": usage.ru_maxrss * scale}, f)
"""


# -- running and measuring commands -----------------------------------------------------------------


@dataclass
class Measured:
    """A finished child process: exit code, wall seconds, peak RSS in bytes, its output."""

    name: str
    rc: int
    seconds: float
    peak_bytes: int
    stdout: str
    stderr: str

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 1e6


def child_env() -> dict[str, str]:
    # SCRM_<SECTION>__<KEY> variables would override the bench's config file.
    return {k: v for k, v in os.environ.items() if not k.startswith("SCRM_")}


def measure(cmd: Sequence[str], logs: Path, name: str) -> Measured:
    """Run ``cmd``; keep its stdout and stderr as ``logs/name.out`` and ``logs/name.err``."""
    logs.mkdir(parents=True, exist_ok=True)
    out, err, report = (logs / f"{name}.{ext}" for ext in ("out", "err", "measure.json"))
    subprocess.run(
        [sys.executable, "-I", "-S", "-c", _MEASURE, str(report), str(out), str(err), *cmd],
        check=True,
        env=child_env(),
    )
    data = json.loads(report.read_text())
    return Measured(
        name=name,
        rc=data["rc"],
        seconds=data["seconds"],
        peak_bytes=data["peak"],
        stdout=out.read_text(encoding="utf-8", errors="replace"),
        stderr=err.read_text(encoding="utf-8", errors="replace"),
    )


def scrm_command() -> list[str]:
    """The ``scrm`` console script of the interpreter running the bench."""
    beside = Path(sys.executable).with_name("scrm")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("scrm")
    if found is None:
        raise SystemExit("no `scrm` command beside the interpreter nor on PATH: pip install -e .")
    return [found]


class BenchError(RuntimeError):
    pass


def checked(result: Measured, what: str, ok_codes: tuple[int, ...] = (0,)) -> Measured:
    if result.rc not in ok_codes:
        tail = (result.stderr.strip() or result.stdout)[-2000:]
        raise BenchError(f"{what} exited with {result.rc}:\n{tail}")
    return result


# -- databases --------------------------------------------------------------------------------------


class Database:
    """A benchmark database that can be recreated empty; ``url`` is the scrm URL."""

    url: str
    label: str

    def reset(self) -> None:
        raise NotImplementedError

    def purchases(self) -> int:
        raise NotImplementedError

    def settle(self) -> None:
        """Flush the previous run's dirty state, so that it does not land on the next timing."""
        os.sync()  # the OS's dirty pages too: another run's writeback would slow this one's fsyncs


class SQLiteDatabase(Database):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self.label = str(path)

    def reset(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def purchases(self) -> int:
        with closing(sqlite3.connect(self.path)) as conn:
            return int(conn.execute("SELECT count(*) FROM purchase").fetchone()[0])


class PostgresDatabase(Database):
    def __init__(self, admin_url: str, name: str) -> None:
        parts = urlsplit(admin_url)
        if parts.path.strip("/") == name:
            raise SystemExit(f"--pg-database {name!r} is the admin database: pick another name")
        self.admin_url, self.name = admin_url, name
        self.url = urlunsplit(parts._replace(path=f"/{name}"))
        self.label = f"{parts.hostname}:{parts.port or 5432}/{name}"

    @contextmanager
    def _connect(self, url: str, *, autocommit: bool = False) -> Iterator[Any]:
        import psycopg

        try:
            with psycopg.connect(url, autocommit=autocommit) as conn:
                yield conn
        except psycopg.OperationalError as exc:
            raise BenchError(f"PostgreSQL at {self.label}: {exc}") from None

    def _admin(self, statement: str) -> None:
        from psycopg import sql

        with self._connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL(statement).format(sql.Identifier(self.name)))

    def reset(self) -> None:
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        self._admin("CREATE DATABASE {}")

    def drop(self) -> None:
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")

    def purchases(self) -> int:
        with self._connect(self.url) as conn:
            return int(conn.execute("SELECT count(*) FROM purchase").fetchone()[0])

    def settle(self) -> None:
        import psycopg

        # CHECKPOINT needs a superuser (or pg_checkpoint); it is only a courtesy.
        with self._connect(self.admin_url, autocommit=True) as conn, suppress(psycopg.Error):
            conn.execute("CHECKPOINT")
        super().settle()

    def server_version(self) -> str:
        with self._connect(self.admin_url) as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])


# -- the floor: parsed tuples written by the driver alone --------------------------------------------


def _minor(amount: str) -> int:
    return int(Decimal(amount).scaleb(2))  # the generator writes CNY, two decimals


def parse_orders(path: Path, backend: Backend) -> tuple[list[tuple[Any, ...]], int]:
    """The purchase rows of an orders CSV as insert tuples, and the number of distinct buyers.

    A buyer is known by one key per row (the ``shop`` export); customer ids are numbered 1, 2, ...
    in order of first appearance, as the import numbers the customers it creates.
    """
    customers: dict[tuple[str, str], int] = {}
    rows: list[tuple[Any, ...]] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        index = {name: i for i, name in enumerate(next(reader))}
        oid, tm, amt, cur = (index[c] for c in ("order_id", "time", "amount", "currency"))
        keys = [(c, index[c]) for c in ("phone", "email", "openid")]
        for row in reader:
            key = next((c, row[i]) for c, i in keys if row[i])
            cid = customers.setdefault(key, len(customers) + 1)
            moment = datetime.fromisoformat(row[tm]).astimezone(UTC)
            occurred: Any = moment
            if backend == "sqlite":  # the text SQLAlchemy's SQLite DateTime stores (UTC)
                occurred = moment.replace(tzinfo=None).isoformat(" ", "microseconds")
            rows.append((SOURCE, row[oid], cid, _minor(row[amt]), row[cur], occurred))
    return rows, len(customers)


def _floor_sqlite(url: str, rows: list[tuple[Any, ...]], customers: int) -> float:
    path = url.removeprefix("sqlite:///")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO customer (id, display_name, created_at) VALUES (?, '', ?)",
            ((i, now) for i in range(1, customers + 1)),
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(SQLITE_INSERT, rows)
        conn.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        conn.close()


def _floor_postgresql(url: str, rows: list[tuple[Any, ...]], customers: int) -> float:
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO customer (id, display_name, created_at) "
            "SELECT g, '', now() FROM generate_series(1, %s) AS g",
            [customers],
        )
        conn.commit()
        conn.autocommit = True
        with suppress(psycopg.Error):
            conn.execute("CHECKPOINT")
        conn.autocommit = False
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(PG_COPY) as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return time.perf_counter() - started


def floor_child(backend: Backend, url: str, orders: Path) -> None:
    """The floor, run in its own process (so that its peak RSS is its own); prints JSON."""
    started = time.perf_counter()
    rows, customers = parse_orders(orders, backend)
    parse_seconds = time.perf_counter() - started
    write = _floor_sqlite if backend == "sqlite" else _floor_postgresql
    write_seconds = write(url, rows, customers)
    result = {
        "rows": len(rows),
        "customers": customers,
        "parse_seconds": parse_seconds,
        "write_seconds": write_seconds,
    }
    print(json.dumps(result))


# -- one backend end to end ------------------------------------------------------------------------


@dataclass
class BackendResult:
    backend: Backend
    database: str
    rows: int
    import_wall: float = 0.0
    import_own: float = 0.0
    import_peak_mb: float = 0.0
    imported: int = 0
    customers_created: int = 0
    reimport_wall: float = 0.0
    reimport_own: float = 0.0
    reimport_peak_mb: float = 0.0
    reimport_new: int = -1
    floor_parse: float = 0.0
    floor_write: float = 0.0
    floor_wall: float = 0.0
    floor_peak_mb: float = 0.0
    floor_customers: int = 0
    rejected: int = 0
    problems: list[str] = field(default_factory=list)

    @staticmethod
    def rate(rows: int, seconds: float) -> float:
        return rows / seconds if seconds > 0 else 0.0

    @property
    def floor_rate(self) -> float:
        return self.rate(self.rows, self.floor_write)

    @property
    def import_ratio(self) -> float:
        return self.rate(self.rows, self.import_wall) / self.floor_rate if self.floor_rate else 0.0

    @property
    def rate_ok(self) -> bool:
        return self.import_ratio >= RATE_GOAL

    @property
    def memory_ok(self) -> bool:
        return self.import_peak_mb < RSS_GOAL_MB and self.reimport_peak_mb < RSS_GOAL_MB

    @property
    def reimport_ok(self) -> bool:
        return self.reimport_new == 0


def write_config(folder: Path, url: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.toml"
    config.write_text(CONFIG.format(url=url), encoding="utf-8")
    return config


def run_backend(
    backend: Backend, db: Database, orders: Path, rows: int, folder: Path, log: Log
) -> BackendResult:
    scrm = scrm_command()
    config = write_config(folder, db.url)
    logs = folder / "logs"
    result = BackendResult(backend, db.label, rows)

    def import_report(run: Measured, what: str) -> dict[str, Any]:
        checked(run, what, ok_codes=(0, EXIT_REJECTED))
        report: dict[str, Any] = json.loads(run.stdout)
        if report["rejected"]:
            first = report["rejected"][0]
            result.problems.append(
                f"{what}: {len(report['rejected']):,} rows rejected, the first: line "
                f"{first['line']}: {first['error']} (all in {logs / run.name}.out)"
            )
        return report

    # 1. scrm import into a fresh database
    db.reset()
    checked(measure([*scrm, "--config", str(config), "init"], logs, "init"), "scrm init")
    db.settle()
    log(f"{backend}: scrm import purchases ({rows:,} rows)")
    cmd = [*scrm, "--config", str(config), "import", "purchases", str(orders), "--json"]
    run = measure(cmd, logs, "import")
    report = import_report(run, "scrm import")
    result.import_wall, result.import_own = run.seconds, float(report["seconds"])
    result.import_peak_mb = run.peak_mb
    result.imported, result.customers_created = report["imported"], report["customers_created"]
    result.rejected = len(report["rejected"])
    stored = db.purchases()
    if report["rows"] != rows or report["imported"] + result.rejected != rows or stored != result.imported:
        result.problems.append(
            f"scrm import: file rows {report['rows']:,}, imported {report['imported']:,}, "
            f"rejected {result.rejected:,}, stored {stored:,}"
        )

    # 2. the same file again: nothing new
    db.settle()
    log(f"{backend}: scrm import purchases again (re-import)")
    run = measure(cmd, logs, "reimport")
    report = import_report(run, "scrm re-import")
    result.reimport_wall, result.reimport_own = run.seconds, float(report["seconds"])
    result.reimport_peak_mb = run.peak_mb
    result.reimport_new = int(report["imported"])
    if report["already_stored"] != result.imported or db.purchases() != stored:
        result.problems.append(
            f"scrm re-import: already_stored {report['already_stored']:,}, expected {result.imported:,}"
        )

    # 3. the floor, on a fresh database with the same schema
    db.reset()
    checked(measure([*scrm, "--config", str(config), "init"], logs, "floor-init"), "scrm init")
    db.settle()
    log(f"{backend}: floor ({'executemany' if backend == 'sqlite' else 'COPY'})")
    floor_cmd = [
        sys.executable, str(Path(__file__).resolve()),
        "--floor-child", backend, "--floor-url", db.url, "--floor-orders", str(orders),
    ]  # fmt: skip
    run = checked(measure(floor_cmd, logs, "floor"), "floor")
    floor = json.loads(run.stdout)
    result.floor_parse, result.floor_write = floor["parse_seconds"], floor["write_seconds"]
    result.floor_wall, result.floor_peak_mb = run.seconds, run.peak_mb
    result.floor_customers = floor["customers"]
    stored = db.purchases()
    if floor["rows"] != rows or stored != rows:
        result.problems.append(f"floor: wrote {floor['rows']:,}, stored {stored:,} of {rows:,}")
    return result


# -- orders file -------------------------------------------------------------------------------------


def orders_file(workdir: Path, rows: int, customers: int, seed: int, log: Log) -> Path:
    """The generated export for these parameters, written once and reused (it is reproducible)."""
    from connectors.orders_gen import write_orders

    path = workdir / f"orders-{rows}-{customers}-{seed}.csv"
    if path.is_file():
        log(f"orders: reusing {path}")
        return path
    log(f"orders: generating {rows:,} rows from {customers:,} customers, seed {seed}")
    started = time.perf_counter()
    partial = path.with_suffix(".partial.csv")
    write_orders(partial, rows, customers=customers, seed=seed, shop=SOURCE)
    partial.replace(path)
    log(f"orders: {path} ({path.stat().st_size / 1e6:,.0f} MB, {time.perf_counter() - started:.1f} s)")
    return path


# -- report ------------------------------------------------------------------------------------------


class Log:
    def __init__(self, quiet: bool) -> None:
        self.quiet, self.started = quiet, time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            elapsed = time.perf_counter() - self.started
            print(f"[{elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)


def code_version() -> str:
    """The commit of the checkout being measured, and whether its library code has local edits."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        commit = git("rev-parse", "--short", "HEAD")
        edits = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench")
    except OSError:
        return "unknown"
    return (commit or "unknown") + (" + local edits" if edits else "")


def environment(backends: Sequence[Backend], pg: PostgresDatabase | None) -> dict[str, str]:
    env = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "scrm": code_version(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
    }
    if "postgresql" in backends and pg is not None:
        try:
            env["postgresql"] = pg.server_version()
        except BenchError:
            env["postgresql"] = "unreachable"
    return env


def table_rows(r: BackendResult) -> Iterator[tuple[str, ...]]:
    floor_rate = r.floor_rate

    def line(method: str, seconds: float, peak: float | None, goal: str) -> tuple[str, ...]:
        rate = r.rate(r.rows, seconds)
        ratio = rate / floor_rate if floor_rate else 0.0
        return (
            r.backend,
            method,
            f"{r.rows:,}",
            f"{seconds:.2f}",
            f"{rate:,.0f}",
            f"{ratio:.2f}",
            "" if peak is None else f"{peak:,.0f}",
            goal,
        )

    goal = "PASS rate" if r.rate_ok else f"FAIL rate ({r.import_ratio:.2f} < {RATE_GOAL})"
    memory_ok = r.import_peak_mb < RSS_GOAL_MB
    goal += ", PASS memory" if memory_ok else f", FAIL memory (>= {RSS_GOAL_MB:.0f} MB)"
    reimport = "PASS 0 new" if r.reimport_ok else f"FAIL {r.reimport_new:,} new"
    if r.reimport_peak_mb >= RSS_GOAL_MB:
        reimport += f", FAIL memory (>= {RSS_GOAL_MB:.0f} MB)"
    floor = "executemany" if r.backend == "sqlite" else "COPY"
    yield line("scrm import", r.import_wall, r.import_peak_mb, goal)
    yield line("└ its own seconds", r.import_own, None, "")
    yield line("scrm re-import", r.reimport_wall, r.reimport_peak_mb, reimport)
    yield line("└ its own seconds", r.reimport_own, None, "")
    yield line(f"floor: {floor}", r.floor_write, None, "the limit (write only)")
    yield line(f"floor: parse + {floor}", r.floor_parse + r.floor_write, r.floor_peak_mb, "")


HEADERS = ("backend", "method", "rows", "seconds", "rows/s", "× floor", "peak RSS MB", "goal")


def print_table(results: Sequence[BackendResult], env: dict[str, str], args: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(132, shutil.get_terminal_size().columns))
    title = f"scrm import purchases: {args.rows:,} orders, {args.customers:,} customers, seed {args.seed}"
    table = Table(title=title, title_justify="left")
    for header in HEADERS:
        right = header in ("rows", "seconds", "rows/s", "× floor", "peak RSS MB")
        table.add_column(header, justify="right" if right else "left")
    for i, result in enumerate(results):
        for j, row in enumerate(table_rows(result)):
            table.add_row(*row, end_section=j == 5 and i < len(results) - 1)
    console.print(table)
    console.print(
        "seconds: scrm rows are the command's wall clock (startup included), '└ its own seconds' "
        "the import's reported seconds; floor rows time the write and commit (and the CSV parse "
        "into tuples)\n× floor: rows/s over the floor's write-only rows/s. Goals: scrm import "
        f"wall clock ≥ {RATE_GOAL} × floor; peak RSS < {RSS_GOAL_MB:.0f} MB (10^6 bytes).",
        highlight=False,
    )
    for r in results:
        console.print(
            f"{r.backend}: {r.database}; customers created by scrm {r.customers_created:,}, "
            f"by the floor {r.floor_customers:,}",
            highlight=False,
        )
        for problem in r.problems:
            console.print(f"[bold red]{r.backend} problem:[/] {problem}", highlight=False)
    console.print(" · ".join(f"{k} {v}" for k, v in env.items()), highlight=False)


# -- main ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark `scrm import purchases` against raw executemany / COPY.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--rows", type=int, default=1_000_000, help="orders in the generated file")
    p.add_argument("--customers", type=int, default=100_000, help="distinct buyers to draw from")
    p.add_argument("--seed", type=int, default=42, help="generator seed")
    p.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated: sqlite, postgresql")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="files and SQLite stores")
    p.add_argument(
        "--pg-admin-url",
        default=os.environ.get("SCRM_BENCH_PG_ADMIN_URL", DEFAULT_PG_ADMIN_URL),
        help="PostgreSQL database to connect to for creating/dropping the bench database "
        "(env SCRM_BENCH_PG_ADMIN_URL)",
    )
    p.add_argument("--pg-database", default="scrm_bench", help="database dropped and recreated per run")
    p.add_argument("--keep", action="store_true", help="keep the PostgreSQL database afterwards")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    p.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    # The floor's worker process (internal).
    p.add_argument("--floor-child", choices=BACKENDS, help=argparse.SUPPRESS)
    p.add_argument("--floor-url", help=argparse.SUPPRESS)
    p.add_argument("--floor-orders", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.floor_child is None:
        if args.rows < 1 or args.customers < 1:
            p.error("--rows and --customers must be positive")
        wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
        unknown = [b for b in wanted if b not in BACKENDS]
        if unknown or not wanted:
            p.error(f"--backends: unknown {', '.join(unknown) or '(none given)'}")
        args.backends = [b for b in BACKENDS if b in wanted]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.floor_child:
        floor_child(args.floor_child, args.floor_url, args.floor_orders)
        return 0
    log = Log(args.quiet)
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    pg = PostgresDatabase(args.pg_admin_url, args.pg_database)
    env = environment(args.backends, pg)
    orders = orders_file(workdir, args.rows, args.customers, args.seed, log)
    results: list[BackendResult] = []
    failed = False
    for backend in args.backends:
        folder = workdir / backend
        db: Database = pg if backend == "postgresql" else SQLiteDatabase(folder / "bench.db")
        try:
            results.append(run_backend(backend, db, orders, args.rows, folder, log))
            if backend == "postgresql" and not args.keep:
                pg.drop()
        except BenchError as exc:
            print(f"{backend}: {exc}", file=sys.stderr)
            failed = True
    print_table(results, env, args)
    if args.json:
        data = {
            "parameters": {"rows": args.rows, "customers": args.customers, "seed": args.seed},
            "environment": env,
            "results": [
                {
                    **asdict(r),
                    "floor_rate": r.floor_rate,
                    "import_ratio": r.import_ratio,
                    "rate_ok": r.rate_ok,
                    "memory_ok": r.memory_ok,
                    "reimport_ok": r.reimport_ok,
                }
                for r in results
            ],
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if failed or any(r.problems or not r.reimport_ok for r in results):
        return 2
    if args.check and not all(r.rate_ok and r.memory_ok for r in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
