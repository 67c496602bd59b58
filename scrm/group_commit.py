"""Group commit: inbound records from many concurrent requests written in shared transactions.

A callback server answers each message only once its record is durably stored; committing every
record on its own would make the database's commit rate the bot's limit. :class:`GroupCommit` runs
one writer thread: a request submits its record and waits on a future; the writer takes what is
queued, waits up to ``window`` seconds for more, writes the group with
:func:`~scrm.inbound.write_inbound` in one transaction and resolves the futures. The thread lets the
event loop go on serving while the writer waits on a database server (PostgreSQL); SQLite, which
works inside the process, is written from the event loop itself (:mod:`scrm.loop_commit`). Both
are an :class:`InboundWriter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from scrm.inbound import InboundRecord, Outcome, write_inbound
from scrm.store import PlannerStatistics, Store

__all__ = ["GroupCommit", "InboundWriter"]

log = logging.getLogger(__name__)

#: seconds a SQLite writer waits for the other processes' write lock before the group fails
_LOCK_WAIT = 30.0
#: PostgreSQL: the advisory lock that lets one process's group claim its keys at a time. Two groups
#: claiming overlapping keys (a retry racing its first copy) at the same moment deadlocked now and
#: then, and PostgreSQL breaks a deadlock only after its deadlock_timeout (1 s by default).
_PG_WRITER_LOCK = 0x5C12_0001


_Item = tuple[InboundRecord, str, str, str]
#: where an outcome goes: a thread's future, or an asyncio future and its loop (woken once per group)
_Waiter = Future[Outcome] | tuple[asyncio.AbstractEventLoop, "asyncio.Future[Outcome]"]


def _settle(pairs: list[tuple[asyncio.Future[Outcome], Outcome | BaseException]]) -> None:
    """In the event loop: resolve the asyncio futures of one group (one wake-up per group)."""
    for future, result in pairs:
        if future.done():  # the request was cancelled (client gone)
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


class InboundWriter(Protocol):
    """What the bot's endpoint needs of a writer: submit a record from a coroutine, and close."""

    def submit_async(
        self, record: InboundRecord, rule: str, reply: str, status: str
    ) -> asyncio.Future[Outcome]: ...

    def close(self) -> None: ...


class GroupCommit:
    """Writes records from many threads in shared transactions: one commit per group, not per record.

    :meth:`submit` queues a batch item and returns a future of its :class:`Outcome`
    (:meth:`submit_async`: an asyncio future). A writer thread takes what is queued, waits up to
    ``window`` seconds for more (up to ``max_batch``), writes it all in one transaction and resolves
    the futures. When the transaction fails on a unique key that another process claimed at the same
    moment (a new follower's identity), the group is written again: the second time the key is found.
    ``window = 0`` writes each group as soon as the writer is free.

    Submitting appends to a list under a lock; the writer is woken only by the first record of a
    group (and by a full group), not by every record, and the futures of an event loop are resolved
    in one call on that loop per group.
    """

    def __init__(self, store: Store, *, window: float = 0.002, max_batch: int = 256) -> None:
        self.store = store
        self.window = window
        self.max_batch = max_batch
        self._items: list[tuple[_Item, _Waiter]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()  # set when records are waiting (or on close)
        self._full = threading.Event()  # set when max_batch records are waiting (or on close)
        self._closing = False
        self._accounts: dict[str, int] = {}
        # a bot writing into a new store keeps its key lookups on their indexes (PostgreSQL)
        self._statistics = PlannerStatistics(
            store, "identity", "customer", "inbound_message", "follower_activity", background=True
        )
        self._conn: Connection | None = None
        dbapi = store.engine.dialect.dbapi
        self._retryable: tuple[type[BaseException], ...] = (
            sa.exc.IntegrityError,
            sa.exc.OperationalError,
            *((dbapi.IntegrityError, dbapi.OperationalError) if dbapi is not None else ()),
        )
        self._thread = threading.Thread(target=self._run, name="scrm-inbound-writer", daemon=True)
        self._thread.start()

    def submit(self, record: InboundRecord, rule: str, reply: str, status: str) -> Future[Outcome]:
        future: Future[Outcome] = Future()
        self._put((record, rule, reply, status), future)
        return future

    def submit_async(
        self, record: InboundRecord, rule: str, reply: str, status: str
    ) -> asyncio.Future[Outcome]:
        """:meth:`submit` for a coroutine: the returned future belongs to the running event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._put((record, rule, reply, status), (loop, future))
        return future

    def _put(self, item: _Item, waiter: _Waiter) -> None:
        with self._lock:
            if self._closing:
                raise RuntimeError("the inbound writer is closed")
            self._items.append((item, waiter))
            waiting = len(self._items)
        if waiting == 1:
            self._ready.set()
        if waiting >= self.max_batch:
            self._full.set()

    def close(self) -> None:
        with self._lock:
            self._closing = True
        self._ready.set()
        self._full.set()
        self._thread.join(timeout=10)
        self._drop_connection()

    def _take(self) -> tuple[list[tuple[_Item, _Waiter]], bool]:
        self._ready.wait()
        if self.window > 0:
            self._full.wait(self.window)  # let more records join the group
        with self._lock:
            group = self._items[: self.max_batch]
            del self._items[: self.max_batch]
            if not self._closing:
                if not self._items:
                    self._ready.clear()
                if len(self._items) < self.max_batch:
                    self._full.clear()
            stop = self._closing and not self._items
        return group, stop

    def _run(self) -> None:
        stop = False
        while not stop:
            group, stop = self._take()
            if group:
                self._write(group)

    def _connection(self) -> Connection:
        """The writer's own connection, kept between groups (a pooled one costs a ROLLBACK per group)."""
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self.store.engine.connect()
            if self._conn.dialect.name == "sqlite":
                # wait for the write lock in this thread, in short steps (SQLite's own busy handler
                # sleeps 1, 2, 5, 10 ... ms, which turns a 1 ms wait for the other process into 3-8 ms)
                self._conn.exec_driver_sql("PRAGMA busy_timeout=0")
                self._conn.commit()
        return self._conn

    def _begin_immediate(self, conn: Connection) -> None:
        """SQLite: take the write lock before reading (no other process can claim a key meanwhile)."""
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except sa.exc.OperationalError as exc:
                if "locked" not in str(exc.orig) or time.monotonic() > deadline:
                    raise
                conn.rollback()
                time.sleep(0.0002)

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                if self._conn.dialect.name == "sqlite":  # not back to the pool: busy_timeout=0 is ours
                    self._conn.invalidate()
                self._conn.close()
            self._conn = None

    def _write(self, group: list[tuple[_Item, _Waiter]]) -> None:
        items = [item for item, _ in group]
        error: BaseException | None = None
        for attempt in range(5):
            try:
                conn = self._connection()
                if conn.dialect.name == "sqlite":
                    self._begin_immediate(conn)
                elif conn.dialect.name == "postgresql":
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (_PG_WRITER_LOCK,))
                try:
                    outcomes = write_inbound(conn, items, self._accounts)
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise
            except Exception as exc:  # every waiting request must hear of it
                if isinstance(exc, self._retryable):
                    # a key claimed by another process at the same moment, a deadlock, a busy database
                    log.info("inbound group of %d conflicted (attempt %d): %s", len(items), attempt + 1, exc)
                    error = exc
                    self._drop_connection()
                    continue
                log.exception("writing %d inbound records failed", len(items))
                error = exc
                self._drop_connection()
                break
            self._resolve(group, outcomes)
            self._statistics.grew(sum(not outcome.duplicate for outcome in outcomes))
            return
        assert error is not None
        self._resolve(group, [error] * len(group))

    @staticmethod
    def _resolve(group: list[tuple[_Item, _Waiter]], results: Sequence[Outcome | BaseException]) -> None:
        loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Outcome], Outcome | BaseException]]]
        loops = {}
        for (_, waiter), result in zip(group, results, strict=True):
            if isinstance(waiter, tuple):
                loops.setdefault(waiter[0], []).append((waiter[1], result))
            elif isinstance(result, BaseException):
                waiter.set_exception(result)
            else:
                waiter.set_result(result)
        for loop, pairs in loops.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_settle, pairs)
