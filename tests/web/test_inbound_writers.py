"""The bot's two writers: LoopCommit (SQLite, in the event loop) and GroupCommit's PostgreSQL lock.

Also the planner statistics a writer into a new store keeps fresh, and the frozen start-up heap of a
``scrm serve`` worker.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
import threading
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
import sqlalchemy as sa

from scrm.group_commit import _PG_WRITER_LOCK, GroupCommit
from scrm.inbound import InboundRecord, Outcome
from scrm.loop_commit import LoopCommit
from scrm.store import PlannerStatistics, Store
from tests.conftest import pg_store_url
from tests.web.bot_env import count

T = TypeVar("T")
APPID = "wx_writer_app_001"
T0 = datetime.fromtimestamp(1_790_000_000, UTC)


def _records(n: int, *, appid: str = APPID, first_id: int = 8_000_000) -> list[InboundRecord]:
    return [
        InboundRecord("wechat", appid, f"o_writer_{i % 5}", "text", T0, first_id + i, f"m{i}")
        for i in range(n)
    ]


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` in a thread of its own: the main thread may hold a running loop already
    (Playwright's sync API keeps one there once the browser tests have run)."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:  # re-raised in the test's thread
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _with_account(store: Store) -> Store:
    store.upgrade()
    with store.connect() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO account (name, platform, external_id, display_name, created_at) "
                "VALUES ('writer', 'wechat', :appid, '', :t)"
            ),
            {"appid": APPID, "t": datetime.now(UTC)},
        )
    return store


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = _with_account(Store(f"sqlite:///{tmp_path / 'bot.db'}"))
    yield store
    store.close()


async def _submit_all(writer: LoopCommit, records: list[InboundRecord]) -> list[Outcome]:
    futures = [writer.submit_async(r, "rule", f"<xml>reply {r.msg_id}</xml>", "replied") for r in records]
    return list(await asyncio.gather(*futures))


def test_loop_commit_stores_a_group_once_and_answers_copies_with_the_first_reply(sqlite_store: Store) -> None:
    writer = LoopCommit(sqlite_store)
    records = _records(20)
    try:
        first = _run(_submit_all(writer, records + records[:3]))  # three copies in the same group
        again = _run(_submit_all(writer, records[5:8]))  # retries, later
    finally:
        writer.close()
    assert [o.duplicate for o in first] == [False] * 20 + [True] * 3
    assert [o.reply for o in first[20:]] == [f"<xml>reply {r.msg_id}</xml>" for r in records[:3]]
    assert all(o.duplicate for o in again)
    assert [o.reply for o in again] == [f"<xml>reply {r.msg_id}</xml>" for r in records[5:8]]
    assert count(sqlite_store, "inbound_message") == 20
    assert count(sqlite_store, "interaction") == 20
    assert count(sqlite_store, "customer") == 5


def test_two_loop_commits_in_two_loops_racing_on_the_same_messages_store_each_once(
    sqlite_store: Store,
) -> None:
    """Two engines and two event loops, as two `scrm serve` workers on one SQLite file."""
    other = Store(sqlite_store.url)
    writers = [LoopCommit(sqlite_store), LoopCommit(other)]
    records = _records(60)
    results: list[list[Outcome]] = [[], []]

    def serve(k: int) -> None:
        async def main() -> None:
            for start in range(0, 60, 6):  # groups of six, interleaved with the other worker's
                results[k] += await _submit_all(writers[k], records[start : start + 6])

        asyncio.run(main())

    threads = [threading.Thread(target=serve, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for w in writers:
        w.close()
    other.close()
    handled = sorted(i for k in range(2) for i, o in enumerate(results[k]) if not o.duplicate)
    assert handled == list(range(60))  # each message handled by exactly one of them
    assert all(
        o.reply == f"<xml>reply {r.msg_id}</xml>"
        for k in range(2)
        for o, r in zip(results[k], records, strict=True)
    )
    assert count(sqlite_store, "inbound_message") == 60
    assert count(sqlite_store, "interaction") == 60


def _hold_write_lock(store: Store) -> sqlite3.Connection:
    holder = sqlite3.connect(
        store.url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_loop_commit_keeps_the_loop_serving_while_another_process_holds_the_lock(sqlite_store: Store) -> None:
    writer = LoopCommit(sqlite_store)
    holder = _hold_write_lock(sqlite_store)

    async def main() -> tuple[int, bool, Outcome]:
        ticks = 0
        future = writer.submit_async(_records(1)[0], "rule", "<xml>r</xml>", "replied")
        for _ in range(20):  # the loop goes on running other work while the group waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        waited = not future.done()
        holder.commit()  # the other process is done
        return ticks, waited, await asyncio.wait_for(future, 10)

    try:
        ticks, waited, outcome = _run(main())
    finally:
        holder.close()
        writer.close()
    assert (ticks, waited, outcome.duplicate) == (20, True, False)
    assert count(sqlite_store, "inbound_message") == 1


def test_loop_commit_fails_the_group_after_lock_wait_and_then_goes_on(sqlite_store: Store) -> None:
    writer = LoopCommit(sqlite_store, lock_wait=0.2)
    holder = _hold_write_lock(sqlite_store)
    first, later = _records(2)

    async def main() -> tuple[BaseException | None, Outcome]:
        failed = await asyncio.gather(writer.submit_async(first, "r", "x", "replied"), return_exceptions=True)
        holder.commit()
        return (failed[0] if isinstance(failed[0], BaseException) else None), await writer.submit_async(
            later, "r", "y", "replied"
        )

    try:
        error, outcome = _run(main())
    finally:
        holder.close()
        writer.close()
    assert isinstance(error, sa.exc.OperationalError) and "locked" in str(error)
    assert not outcome.duplicate
    with sqlite_store.connect() as conn:
        keys = conn.execute(sa.text("SELECT dedup_key FROM inbound_message")).scalars().all()
    assert keys == [later.dedup_key]  # the failed one stored nothing (WeChat sends it again)


def test_loop_commit_write_error_reaches_every_request_and_stores_nothing(sqlite_store: Store) -> None:
    writer = LoopCommit(sqlite_store)
    strangers = _records(3, appid="wx_unknown_app_01")

    async def main() -> list[BaseException | Outcome]:
        futures = [writer.submit_async(r, "r", "x", "replied") for r in strangers]
        return list(await asyncio.gather(*futures, return_exceptions=True))

    try:
        results = _run(main())
        after = _run(_submit_all(writer, _records(1)))
    finally:
        writer.close()
    assert all(isinstance(r, LookupError) and "scrm init" in str(r) for r in results)
    assert [o.duplicate for o in after] == [False]
    assert count(sqlite_store, "inbound_message") == 1


def test_loop_commit_when_the_database_cannot_be_opened_fails_each_group_and_never_hangs(
    tmp_path: Path,
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'no such folder' / 'bot.db'}")
    writer = LoopCommit(store)

    async def main() -> list[BaseException | Outcome]:
        first = await asyncio.gather(
            writer.submit_async(_records(1)[0], "r", "x", "replied"), return_exceptions=True
        )
        second = await asyncio.gather(
            writer.submit_async(_records(2)[1], "r", "y", "replied"), return_exceptions=True
        )
        return [*first, *second]

    try:
        results = _run(asyncio.wait_for(main(), 10))
    finally:
        writer.close()
        store.close()
    assert [type(r) for r in results] == [sa.exc.OperationalError] * 2
    assert all("unable to open database file" in str(r) for r in results)


def test_loop_commit_is_for_sqlite_and_refuses_work_once_closed(sqlite_store: Store) -> None:
    writer = LoopCommit(sqlite_store)
    writer.close()

    async def submit() -> None:
        writer.submit_async(_records(1)[0], "r", "x", "replied")

    with pytest.raises(RuntimeError, match="closed"):
        _run(submit())
    server = Store("postgresql://scrm@127.0.0.1:5432/scrm")  # no connection is made
    try:
        with pytest.raises(ValueError, match="SQLite only"):
            LoopCommit(server)
    finally:
        server.close()


def test_loop_commit_refuses_a_second_loop_while_the_first_has_a_group_pending(sqlite_store: Store) -> None:
    writer = LoopCommit(sqlite_store)
    first, second = _records(2)
    refused: list[BaseException] = []

    def other_loop() -> None:
        async def submit() -> None:
            writer.submit_async(second, "r", "x", "replied")

        try:
            asyncio.run(submit())
        except RuntimeError as exc:
            refused.append(exc)

    async def main() -> Outcome:
        future = writer.submit_async(first, "r", "x", "replied")  # its flush is scheduled, not run yet
        thread = threading.Thread(target=other_loop)
        thread.start()
        thread.join()
        return await future

    try:
        outcome = _run(main())
    finally:
        writer.close()
    assert [str(e) for e in refused] == ["a LoopCommit serves one event loop at a time"]
    assert not outcome.duplicate
    assert count(sqlite_store, "inbound_message") == 1


@pytest.mark.postgres
def test_group_commit_on_postgresql_waits_for_the_other_writer_lock(pg_url: str, pg_schema: str) -> None:
    """Two processes' groups never claim at the same time (they deadlocked now and then, for 1 s)."""
    store = _with_account(Store(pg_store_url(pg_url, pg_schema)))
    writer = GroupCommit(store, window=0)
    other = psycopg.connect(pg_url, autocommit=True)
    try:
        other.execute("SELECT pg_advisory_lock(%s)", (_PG_WRITER_LOCK,))  # another worker is writing
        future = writer.submit(_records(1)[0], "r", "x", "replied")
        with pytest.raises(TimeoutError):
            future.result(timeout=0.5)
        assert count(store, "inbound_message") == 0
        other.execute("SELECT pg_advisory_unlock(%s)", (_PG_WRITER_LOCK,))
        assert not future.result(timeout=10).duplicate
    finally:
        other.close()
        writer.close()
    assert count(store, "inbound_message") == 1
    store.close()


def _reltuples(store: Store, table: str) -> float:
    with store.connect() as conn:
        return float(
            conn.execute(
                sa.text(
                    "SELECT reltuples FROM pg_class WHERE oid = to_regclass(current_schema() || '.' || :t)"
                ),
                {"t": table},
            ).scalar_one()
        )


@pytest.mark.postgres
@pytest.mark.parametrize("background", [False, True])
def test_planner_statistics_analyze_when_the_rows_written_double(
    pg_url: str, pg_schema: str, background: bool
) -> None:
    store = _with_account(Store(pg_store_url(pg_url, pg_schema)))
    with store.connect() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO customer (display_name, created_at) "
                "SELECT 'c', now() FROM generate_series(1, 50)"
            )
        )
    statistics = PlannerStatistics(store, "customer", first=20, background=background)
    statistics.grew(30)  # under twice the first mark: nothing yet
    assert _reltuples(store, "customer") < 0  # never analysed
    statistics.grew(15)
    deadline = time.monotonic() + 10  # background: the ANALYZE runs in a thread of its own
    while _reltuples(store, "customer") != 50 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _reltuples(store, "customer") == 50
    store.close()


@pytest.mark.postgres
def test_planner_statistics_failure_in_the_background_is_logged_and_retried(
    pg_url: str, pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = _with_account(Store(pg_store_url(pg_url, pg_schema)))
    statistics = PlannerStatistics(store, "no_such_table", first=1, background=True)
    with caplog.at_level(logging.WARNING, logger="scrm.store"):
        for rows in (5, 20):  # two doublings: the first failure does not stop the second
            statistics.grew(rows)
            deadline = time.monotonic() + 10
            while not statistics._running.acquire(blocking=False) and time.monotonic() < deadline:
                time.sleep(0.02)  # the thread still runs
            statistics._running.release()
    failures = [r for r in caplog.records if r.getMessage() == "ANALYZE no_such_table failed"]
    assert len(failures) == 2
    store.close()


def test_serve_worker_freezes_its_start_up_heap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_store: Store
) -> None:
    """Objects alive once the app is built are kept out of full collections (70 ms pauses otherwise)."""
    from scrm.web.app import app_from_env

    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{sqlite_store.url}"\n', encoding="utf-8")
    monkeypatch.setenv("SCRM_CONFIG", str(config))
    gc.unfreeze()
    app = app_from_env()
    try:
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
        app.state.bot.close()
        app.state.bot.store.close()
