"""Persist what connectors read into the store.

:func:`import_purchases` streams an order export through :class:`~connectors.orders.OrderReader`,
resolves each buyer to a customer (merging identities that meet) and stores each order once. It commits
batch by batch: a crash loses at most the batch in flight, and importing the file again completes it
without storing anything twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from connectors.orders import Format, OrderReader, PurchaseRecord, RowError
from scrm.config import Settings
from scrm.errors import ImportFileError
from scrm.identity import Merge, resolve
from scrm.purchases import PurchaseRow, stored_orders, write_purchases
from scrm.store import Store
from scrm.sync_accounts import sync_accounts

__all__ = ["ImportReport", "import_purchases"]

Progress = Callable[[int, int], None]  # (bytes read, bytes in all)


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


def _money(minor: int, currency: str) -> str:
    return f"{minor / 100:.2f} {currency}"


def _flush(store: Store, batch: list[PurchaseRecord], source: str, report: ImportReport) -> None:
    with store.connect() as conn:
        resolution = resolve(
            conn,
            [r.keys for r in batch],
            source=f"import:{source}",
            names=[r.name for r in batch],
        )
        rows = [
            PurchaseRow(source, r[1], cid, r[3], r[4], r[5])
            for r, cid in zip(batch, resolution.customer_ids, strict=True)
        ]
        inserted = write_purchases(conn, rows)
        if inserted < len(rows):
            # Orders stored before: the same values are a no-op, different values are reported.
            stored = stored_orders(conn, source, [r.order_id for r in rows])
            for record, row in zip(batch, rows, strict=True):
                old = stored.get(row.order_id)
                if old is None:
                    continue
                same = (old.customer_id, old.amount_minor, old.currency, old.occurred_at) == (
                    row.customer_id,
                    row.amount_minor,
                    row.currency,
                    row.occurred_at,
                )
                if not same:
                    report.rejected.append(
                        RowError(
                            record.line,
                            f"order {row.order_id} is already stored with other values "
                            f"({_money(old.amount_minor, old.currency)} at "
                            f"{old.occurred_at.isoformat()}); kept the stored order",
                        )
                    )
    report.imported += inserted
    report.already_stored += len(rows) - inserted
    report.customers_created += resolution.customers_created
    report.identities_added += resolution.identities_added
    report.merges.extend(resolution.merges)


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
    reader = OrderReader(
        path,
        tz=settings.scrm.tz,
        accounts=wechat,
        format=format,
        default_currency=settings.imports.default_currency,
        phone_region=settings.imports.phone_region,
        encoding=encoding,
    )
    report = ImportReport(file=str(path))
    started = time.perf_counter()
    first_line: dict[str, int] = {}
    batch: list[PurchaseRecord] = []
    size = settings.imports.batch_size
    # Sequential on purpose: a writer thread was measured slower, because sqlite3 releases and
    # re-takes the GIL on every row it steps and so stalls behind the parsing thread.
    try:
        for item in reader:
            report.rows += 1
            if type(item) is RowError:
                report.rejected.append(item)
                continue
            record = cast(PurchaseRecord, item)
            seen = first_line.setdefault(record.order_id, record.line)
            if seen != record.line:
                report.rejected.append(
                    RowError(record.line, f"order {record.order_id} appears again (first on line {seen})")
                )
                continue
            batch.append(record)
            if len(batch) >= size:
                _flush(store, batch, source, report)
                batch = []
                if progress:
                    progress(reader.bytes_read, reader.size)
    except ImportFileError:
        # The file turned unreadable half-way: keep the good rows read so far, then report.
        if batch:
            _flush(store, batch, source, report)
        raise
    if batch:
        _flush(store, batch, source, report)
    if progress:
        progress(reader.size, reader.size)
    report.ignored_columns = reader.ignored_columns
    report.seconds = time.perf_counter() - started
    report.rejected.sort(key=lambda e: e.line)
    return report
