"""What every sync shares: its checkpoint row, reads that run ahead of the writes, SQLite's page cache.

Moved here from :mod:`connectors.follower_sync` so that the WeCom sync (:mod:`connectors.wecom_sync`)
uses the same machinery.
"""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from queue import Full, Queue
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from scrm.models import SyncCheckpoint, utcnow

__all__ = ["Checkpoint", "bulk_settings", "fewer_collections", "read_ahead", "sqlite_page_cache"]

checkpoint_t = SyncCheckpoint.__table__  # type: ignore[attr-defined]
T = TypeVar("T")
#: SQLite page cache during a sync, in KiB (the default is 2,000)
_SQLITE_CACHE_KIB = 131_072
#: allocations between two young-generation garbage collections during a sync (Python's default: 700)
_GC_YOUNG = 50_000


class Checkpoint:
    """One ``sync_checkpoint`` row: the state of a run, saved inside the caller's transaction."""

    def __init__(self, conn: Connection, account_id: int, kind: str) -> None:
        self.account_id, self.kind = account_id, kind
        c = checkpoint_t.c
        row = conn.execute(
            sa.select(c.id, c.state, c.finished_at).where(c.account_id == account_id, c.kind == kind)
        ).first()
        if row is None:
            now = utcnow()
            self.id = conn.execute(
                sa.insert(checkpoint_t).returning(c.id),
                {"account_id": account_id, "kind": kind, "state": "{}", "started_at": now, "updated_at": now},
            ).scalar_one()
            self.state: dict[str, Any] = {}
            self.finished = True
        else:
            self.id, self.state, self.finished = row.id, json.loads(row.state), row.finished_at is not None

    def save(self, conn: Connection, *, finished: bool = False, started: bool = False) -> None:
        now = utcnow()
        values: dict[str, Any] = {"state": json.dumps(self.state, sort_keys=True), "updated_at": now}
        if started:
            values["started_at"], values["finished_at"] = now, None
        if finished:
            values["finished_at"] = now
        conn.execute(sa.update(checkpoint_t).where(checkpoint_t.c.id == self.id).values(**values))
        self.finished = finished


def read_ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Run ``items`` in a thread, up to ``depth`` items ahead: the next batch's requests are in flight
    while this one is written. Its errors are raised here; leaving the loop stops the thread."""
    queue: Queue[tuple[str, Any]] = Queue(depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.05)
                return True
            except Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    break
            else:
                put(("done", None))
        except BaseException as exc:  # handed to the consumer, raised there
            put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=run, name="scrm-sync-read", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = queue.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


@contextmanager
def sqlite_page_cache(conn: Connection) -> Iterator[None]:
    """On SQLite, a page cache that holds the identity and follow indexes while the sync runs.

    Openids are random strings, so every lookup and insert lands on a random index page; with
    SQLite's default 2 MB cache a 100,000-follower sync spent half its time re-reading pages.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    restore = f"PRAGMA cache_size = {int(before or -2000)}"
    with _connection_setting(conn, f"PRAGMA cache_size = -{_SQLITE_CACHE_KIB}", restore):
        yield


@contextmanager
def _connection_setting(conn: Connection, apply: str, restore: str) -> Iterator[None]:
    """Run ``apply`` on the connection, and ``restore`` after (an open transaction rolled back first)."""
    conn.exec_driver_sql(apply)
    conn.commit()
    try:
        yield
    finally:
        if conn.in_transaction():
            conn.rollback()
        conn.exec_driver_sql(restore)
        conn.commit()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect garbage less often while a sync runs (the thresholds are restored after).

    A sync allocates millions of tuples that live for one batch, beside a key cache of hundreds of
    thousands that live for the whole run; with the default thresholds the collector kept walking the
    long-lived ones (about 12% of a 100,000-follower sync's CPU, measured). The rows hold no cycles.
    """
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], _GC_YOUNG), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


@contextmanager
def bulk_settings(conn: Connection) -> Iterator[None]:
    """Settings of a sync's connection while it writes batch after batch, restored after.

    SQLite: the larger page cache of :func:`sqlite_page_cache`. PostgreSQL: commits that do not
    wait for the server to flush its log (``synchronous_commit = off``). A server crash can then
    lose the last batches committed (well under a second's worth), but each batch's rows and its
    checkpoint are in one transaction, so they are lost together and the next sync writes them
    again: the store stays consistent, and the sync no longer waits for a disk flush per batch.
    """
    if conn.dialect.name != "postgresql":
        with sqlite_page_cache(conn):
            yield
        return
    with _connection_setting(conn, "SET synchronous_commit = off", "RESET synchronous_commit"):
        yield
