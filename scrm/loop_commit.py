"""Group commit inside the event loop, for SQLite: the bot's records written by the loop that took them.

SQLite works inside the server process: writing a group of records is CPU work under one write lock,
not a wait on the network. Handing it to a writer thread (:class:`~scrm.group_commit.GroupCommit`,
right for PostgreSQL) costs a thread hand-off and a contended GIL per group while buying nothing, so
on SQLite :class:`LoopCommit` writes in the event loop itself:

- :meth:`LoopCommit.submit_async` queues the record and, for the first record of a group, schedules
  one flush with ``loop.call_soon``. The flush therefore runs once the requests that arrived together
  have all been read, decrypted and matched: they form the group, with no timed window;
- the flush takes SQLite's write lock without waiting (``BEGIN IMMEDIATE``, no busy handler). When
  another server process holds it, the flush is tried again 0.2 ms later, so the loop keeps
  serving meanwhile (every 2 ms after the first 10 ms); after ``lock_wait`` seconds the group fails;
- the group is written by :func:`~scrm.inbound.write_inbound` in one transaction, exactly as the
  writer thread writes it, and each request's future is resolved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from scrm.inbound import InboundRecord, Outcome, write_inbound
from scrm.store import Store

__all__ = ["LoopCommit"]

log = logging.getLogger(__name__)

_Item = tuple[InboundRecord, str, str, str]
#: seconds between tries of the write lock: another bot worker holds it a millisecond or two; after
#: 10 ms (a long transaction elsewhere: a campaign run, a sync) the loop tries less often
_RETRY, _RETRY_SLOW, _SLOW_AFTER = 0.0002, 0.002, 0.01


class LoopCommit:
    """Writes the bot's records in shared SQLite transactions from the event loop (see the module).

    Parameters
    ----------
    store
        A SQLite store.
    max_batch
        Most records in one transaction.
    lock_wait
        Seconds a group waits for another process's write lock before its requests fail.
    """

    def __init__(self, store: Store, *, max_batch: int = 256, lock_wait: float = 30.0) -> None:
        if store.dialect != "sqlite":
            raise ValueError("LoopCommit writes SQLite only (PostgreSQL: GroupCommit)")
        self.store = store
        self.max_batch = max_batch
        self.lock_wait = lock_wait
        self._pending: list[tuple[_Item, asyncio.Future[Outcome]]] = []
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting_since: float | None = None
        self._accounts: dict[str, int] = {}
        self._conn: Connection | None = None
        self._closed = False

    def submit_async(
        self, record: InboundRecord, rule: str, reply: str, status: str
    ) -> asyncio.Future[Outcome]:
        """Queue one record; the future (of the running loop) resolves once it is stored or found."""
        if self._closed:
            raise RuntimeError("the inbound writer is closed")
        loop = asyncio.get_running_loop()
        if self._scheduled and loop is not self._loop:
            raise RuntimeError("a LoopCommit serves one event loop at a time")
        future: asyncio.Future[Outcome] = loop.create_future()
        self._pending.append(((record, rule, reply, status), future))
        if not self._scheduled:
            self._scheduled, self._loop = True, loop
            loop.call_soon(self._flush, loop)
        return future

    def close(self) -> None:
        self._closed = True
        for _, future in self._pending:
            if not future.done():
                future.set_exception(RuntimeError("the inbound writer is closed"))
        self._pending.clear()
        self._drop_connection()

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()  # not back to the pool: busy_timeout=0 is ours
                self._conn.close()
            self._conn = None

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self.store.engine.connect()
            self._conn.exec_driver_sql("PRAGMA busy_timeout=0")  # never block the loop on the lock
            self._conn.commit()
        return self._conn

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._closed or not self._pending:
            self._scheduled = False
            return
        try:
            conn = self._connection()
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except sa.exc.OperationalError as exc:
            now = time.monotonic()
            self._waiting_since = self._waiting_since or now
            if "locked" in str(exc.orig) and now - self._waiting_since < self.lock_wait:
                if self._conn is not None:
                    self._conn.rollback()
                delay = _RETRY if now - self._waiting_since < _SLOW_AFTER else _RETRY_SLOW
                loop.call_later(delay, self._flush, loop)  # another process writes: try again soon
                return
            self._fail(len(self._pending), exc)
        except Exception as exc:  # the database cannot be opened, ...: every waiting request hears of it
            self._fail(len(self._pending), exc)
        else:
            self._waiting_since = None
            self._write(conn)
        if self._pending:
            loop.call_soon(self._flush, loop)
        else:
            self._scheduled = False

    def _write(self, conn: Connection) -> None:
        group = self._pending[: self.max_batch]
        del self._pending[: self.max_batch]
        try:
            outcomes = write_inbound(conn, [item for item, _ in group], self._accounts)
            conn.commit()
        except Exception as exc:  # every waiting request must hear of it
            log.exception("writing %d inbound records failed", len(group))
            with contextlib.suppress(Exception):
                conn.rollback()
            self._conn = None if conn.invalidated else conn
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if not future.done():  # done: the request was cancelled (client gone)
                future.set_result(outcome)

    def _fail(self, n: int, exc: BaseException) -> None:
        log.error("%d inbound records not stored: %s", n, exc)
        self._waiting_since = None
        self._drop_connection()
        group = self._pending[:n]
        del self._pending[:n]
        for _, future in group:
            if not future.done():
                future.set_exception(exc)
