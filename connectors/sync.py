"""Persist what connectors read into the store.

:func:`import_purchases` streams an order export through :class:`~connectors.orders.OrderReader`,
resolves each buyer to a customer (merging identities that meet) and stores each order once. It commits
batch by batch: a crash loses at most the batch in flight, and importing the file again completes it
without storing anything twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from connectors import child_reader
from connectors.orders import Format, OrderReader, RowError
from scrm.config import Settings
from scrm.errors import ImportFileError
from scrm.identity import Merge, resolve
from scrm.money import format_money
from scrm.purchases import repoint_purchases, stored_orders, utc_text, write_purchases
from scrm.store import Store
from scrm.sync_accounts import sync_accounts

__all__ = ["ImportReport", "import_purchases"]

Progress = Callable[[int, int], None]  # (bytes read, bytes in all)
#: a purchase record as plain tuples: (line, order_id, keys, amount_minor, currency, occurred_at, name)
#: occurred_at in :func:`scrm.purchases.utc_text` form
Wire = tuple[int, str, tuple[tuple[str, str, str], ...], int, str, str, str]
Message = tuple[Any, ...]
#: files smaller than this are parsed in-process
_PROCESS_MIN_BYTES = 8 << 20


@dataclass
class ImportReport:
    """What an import did. ``rejected`` lists each skipped row with its line number and reason."""

    file: str
    rows: int = 0
    imported: int = 0
    already_stored: int = 0
    customers_created: int = 0
    identities_added: int = 0
    merges: list[Merge] = field(default_factory=list)
    rejected: list[RowError] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.rejected

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["merges"] = [
            {"kept": m.kept_id, "merged": m.merged_id, "key": str(m.key), "reason": m.reason}
            for m in self.merges
        ]
        data["rejected"] = [{"line": e.line, "error": e.message} for e in self.rejected]
        return data


class _BatchWriter:
    """Resolves each batch's buyers, then stores its purchases.

    On SQLite both happen in one transaction. On PostgreSQL a second connection stores batch N's
    purchases in a thread while this one resolves batch N+1: COPY mostly waits on the server, so the
    two overlap. Customers and identities are committed before the purchases that point to them; a
    merge made while a batch is still being stored waits for it and re-points its purchases too.
    """

    def __init__(self, store: Store, conn: Connection, source: str, report: ImportReport) -> None:
        self.conn, self.source, self.report = conn, source, report
        self.stack = ExitStack()
        self.pending: Future[None] | None = None
        self.threaded = store.dialect == "postgresql"
        if self.threaded:
            self.writer_conn = self.stack.enter_context(store.bulk())
            self.pool = self.stack.enter_context(ThreadPoolExecutor(1, "scrm-import"))

    def __enter__(self) -> _BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.wait()
        finally:
            self.stack.close()

    def wait(self) -> None:
        """Wait for the purchases in flight; re-raise their error."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def add(self, batch: list[Wire]) -> None:
        with self.conn.begin():
            resolution = resolve(
                self.conn,
                [r[2] for r in batch],
                source=f"import:{self.source}",
                names=[r[6] for r in batch],
            )
            if resolution.merges and self.pending is not None:
                self.wait()  # the batch in flight may hold purchases of a merged customer
                for merge in resolution.merges:
                    repoint_purchases(self.conn, merge.merged_id, merge.kept_id)
            rows = [
                (self.source, r[1], cid, r[3], r[4], r[5])
                for r, cid in zip(batch, resolution.customer_ids, strict=True)
            ]
            if not self.threaded:
                self._store(self.conn, rows, batch)
        report = self.report
        report.customers_created += resolution.customers_created
        report.identities_added += resolution.identities_added
        report.merges.extend(resolution.merges)
        if self.threaded:
            self.wait()
            self.pending = self.pool.submit(self._store_committed, rows, batch)

    def _store_committed(self, rows: list[tuple[Any, ...]], batch: list[Wire]) -> None:
        with self.writer_conn.begin():
            self._store(self.writer_conn, rows, batch)

    def _store(self, conn: Connection, rows: list[tuple[Any, ...]], batch: list[Wire]) -> None:
        inserted = write_purchases(conn, rows)
        if inserted < len(rows):
            # Orders stored before: the same values are a no-op, different values are reported.
            stored = stored_orders(conn, self.source, [r[1] for r in rows])
            for record, row in zip(batch, rows, strict=True):
                old = stored.get(row[1])
                if old is None:
                    continue
                if (old.customer_id, old.amount_minor, old.currency, utc_text(old.occurred_at)) != row[2:]:
                    self.report.rejected.append(
                        RowError(
                            record[0],
                            f"order {row[1]} is already stored with other values "
                            f"({format_money(old.amount_minor, old.currency)} at "
                            f"{old.occurred_at.isoformat()}); kept the stored order",
                        )
                    )
        self.report.imported += inserted
        self.report.already_stored += len(rows) - inserted


def import_purchases(
    store: Store,
    settings: Settings,
    path: str | Path,
    *,
    source: str = "shop",
    format: Format | None = None,
    encoding: str = "utf-8-sig",
    progress: Progress | None = None,
) -> ImportReport:
    """Import an order export into the store; see :mod:`connectors.orders` for the columns.

    Raises
    ------
    ImportFileError
        The file cannot be read at all (missing, no header, wrong encoding). Rows read before the
        problem stay imported.
    SchemaOutOfDate
        The store was not initialised: run ``scrm init``.
    """
    store.check_schema()
    sync_accounts(store, settings)
    wechat = {name: a.appid for name, a in settings.accounts.items() if a.platform == "wechat"}
    kwargs: dict[str, Any] = {
        "path": Path(path),
        "tz": settings.scrm.tz,
        "accounts": wechat,
        "format": format,
        "default_currency": settings.imports.default_currency,
        "phone_region": settings.imports.phone_region,
        "encoding": encoding,
    }
    reader = OrderReader(**kwargs)  # checks the file and its format before anything starts
    report = ImportReport(file=str(path))
    started = time.perf_counter()
    size = settings.imports.batch_size
    mode = settings.imports.reader_process
    in_process = (
        mode == "never"
        or not child_reader.available()
        or (mode == "auto" and reader.size < _PROCESS_MIN_BYTES)
    )
    messages = _batches(kwargs, size) if in_process else _from_process(kwargs, size)
    with store.bulk() as conn, _BatchWriter(store, conn, source, report) as writer:
        _consume(messages, writer, store, report, reader.size, progress)
    if progress:
        progress(reader.size, reader.size)
    report.seconds = time.perf_counter() - started
    report.rejected.sort(key=lambda e: e.line)
    return report


def _consume(
    messages: Iterator[Message],
    writer: _BatchWriter,
    store: Store,
    report: ImportReport,
    total_bytes: int,
    progress: Progress | None,
) -> None:
    """Write the batches as they come; stop at the end of the file or at a fatal problem."""
    analyzed_at = 0  # rows written when the planner's statistics were last refreshed
    for message in messages:
        kind = message[0]
        if kind == "done":
            report.ignored_columns = message[1]
            break
        if kind == "error":  # the file turned unreadable: what was read before it is stored
            writer.wait()
            raise ImportFileError(message[1])
        _, records, errors, rows, bytes_read = message
        report.rows += rows
        report.rejected.extend(errors)
        if records:
            writer.add(records)
            written = report.imported + report.identities_added
            if written > 2 * analyzed_at + 10_000:
                store.analyze("purchase", "identity", "customer")
                analyzed_at = written
        if progress:
            progress(bytes_read, total_bytes)


def _batches(kwargs: dict[str, Any], size: int) -> Iterator[Message]:
    """Read the file and yield ("batch", records, errors, rows, bytes read) messages, then
    ("done", ignored columns), or ("error", message) after the rows read before a fatal problem."""
    reader = OrderReader(**kwargs)
    records: list[Wire] = []
    errors: list[RowError] = []
    rows = 0
    shared: dict[str, str] = {}
    first_line: dict[str, int] = {}
    limit = min(size, 5_000)  # a small first batch gets the writer going sooner

    def share(text: str) -> str:  # one object per distinct kind, scope and currency
        return shared.setdefault(text, text)

    try:
        for item in reader:
            rows += 1
            if isinstance(item, RowError):
                errors.append(item)
                continue
            line, order_id, keys, amount, currency, occurred_at, name = item
            seen = first_line.setdefault(order_id, line)
            if seen != line:
                errors.append(RowError(line, f"order {order_id} appears again (first on line {seen})"))
                continue
            # Plain tuples of plain strings, repeated values shared (pickle then sends them once):
            # unpickling in the importing process costs a fraction of NamedTuples, enum members
            # and datetimes, and the time is already in storage form.
            plain_keys = tuple((share(str(k[0])), share(k[1]), k[2]) for k in keys)
            records.append((line, order_id, plain_keys, amount, share(currency), utc_text(occurred_at), name))
            if len(records) >= limit:
                yield ("batch", records, errors, rows, reader.bytes_read)
                records, errors, rows = [], [], 0
                limit = size
    except ImportFileError as exc:
        yield ("batch", records, errors, rows, reader.bytes_read)
        yield ("error", str(exc))
        return
    yield ("batch", records, errors, rows, reader.bytes_read)
    yield ("done", reader.ignored_columns)


def _from_process(kwargs: dict[str, Any], size: int) -> Iterator[Message]:
    """Parse in a child process while this one resolves and writes: two cores instead of one.

    At most two batches wait in the queue, so memory stays bounded; if the import stops for any
    reason the child is killed (:mod:`connectors.child_reader`).
    """
    return child_reader.in_child(
        partial(_batches, kwargs, size),
        advice=f"reading {kwargs['path']}; what was read before is stored: import the file again",
    )
