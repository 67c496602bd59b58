"""Purchases import: an order export uploaded as a file, or order rows as JSON.

Both go through the importer of `scrm import purchases` (:func:`connectors.sync.import_purchases`):
the same columns, bad rows reported by line number and skipped, each order stored once however
often it is imported. Marketers and admins may import; every import is written to the audit log.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, Field, model_validator

from connectors.sync import ImportReport, import_purchases
from scrm.access import Principal, audit
from scrm.config import Settings
from scrm.errors import ImportFileError
from scrm.store import Store
from scrm.web.api.deps import SettingsDep, StoreDep, error_response, marketer

__all__ = ["MAX_UPLOAD_BYTES", "router"]

router = APIRouter(prefix="/purchases", tags=["purchases"])

#: the largest upload taken (larger: 413); bigger exports go through `scrm import purchases`
MAX_UPLOAD_BYTES = 64 << 20
_CHUNK = 1 << 20
#: rejected rows listed in an answer (all are counted)
MAX_REJECTED = 1000
Source = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")]


class Rejected(BaseModel):
    line: int
    error: str


class ImportAnswer(BaseModel):
    """What an import stored: ``imported`` new orders, ``already_stored`` (sent before), ``rejected``
    rows with their line numbers (of the file; for JSON rows, the row's position from 1)."""

    source: str
    rows: int
    imported: int
    already_stored: int
    customers_created: int
    merges: int
    rejected_total: int
    rejected: list[Rejected] = Field(description=f"the first {MAX_REJECTED} rejected rows")
    ignored_columns: list[str]


class OrderRow(BaseModel):
    """One order, with the columns of an order export (values as in the file; checked by the importer)."""

    order_id: str | None = Field(None, max_length=200)
    amount: str | int | float | None = None
    time: str | int | float | None = None
    currency: str | None = Field(None, max_length=10)
    openid: str | None = Field(None, max_length=200)
    unionid: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=50)
    email: str | None = Field(None, max_length=320)
    account: str | None = Field(None, max_length=100)
    name: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _no_nul(self) -> OrderRow:
        if any(isinstance(v, str) and "\x00" in v for v in self.__dict__.values()):
            raise ValueError("a value holds a NUL character")
        return self


class OrderRows(BaseModel):
    source: Source = "shop"
    rows: list[OrderRow] = Field(min_length=1, max_length=10_000)


def _run(
    store: Store,
    settings: Settings,
    caller: Principal,
    path: Path,
    source: str,
    fmt: Literal["csv", "jsonl"],
    name: str,
    **kw: Any,
) -> dict[str, Any]:
    """Import ``path`` (called ``name`` in messages) and audit it (also when the file cannot be read:
    what was read before stays stored)."""
    try:
        report: ImportReport = import_purchases(store, settings, path, source=source, format=fmt, **kw)
    except ImportFileError as exc:
        message = str(exc).replace(str(path), name)
        with store.connect() as conn:
            audit(conn, caller.actor, "purchases.import", source, {"file": name, "error": message})
        raise ImportFileError(message) from None
    answer = {
        "source": source,
        "rows": report.rows,
        "imported": report.imported,
        "already_stored": report.already_stored,
        "customers_created": report.customers_created,
        "merges": len(report.merges),
        "rejected_total": len(report.rejected),
        "rejected": [{"line": e.line, "error": e.message} for e in report.rejected[:MAX_REJECTED]],
        "ignored_columns": report.ignored_columns,
    }
    with store.connect() as conn:
        counts = {k: v for k, v in answer.items() if k not in ("source", "rejected", "ignored_columns")}
        detail = {"file": name, **counts}
        audit(conn, caller.actor, "purchases.import", source, detail)
    return answer


@router.post(
    "/import",
    response_model=ImportAnswer,
    summary="Import an order export (CSV or JSON Lines upload)",
    responses={413: {"description": "the file is larger than 64 MiB"}},
)
def import_file(
    store: StoreDep,
    settings: SettingsDep,
    caller: Annotated[Principal, marketer],
    file: Annotated[UploadFile, File(description="the order export: CSV with a header row, or JSON Lines")],
    source: Annotated[str, Form(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")] = "shop",
    format: Annotated[Literal["csv", "jsonl"], Form(description="the file's format")] = "csv",
    encoding: Annotated[Literal["utf-8-sig", "utf-8", "gbk", "gb18030"], Form()] = "utf-8-sig",
) -> Any:
    """Columns as for `scrm import purchases`: order_id, amount, time (required), currency, openid,
    unionid, phone, email (at least one), account, name. Importing the same file again stores nothing
    twice; an order re-imported with other values is reported, not overwritten."""
    with tempfile.TemporaryDirectory(prefix="scrm-import-") as folder:
        path = Path(folder) / f"upload.{format}"
        size = 0
        with path.open("wb") as out:
            while chunk := file.file.read(_CHUNK):
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    return error_response(
                        413, "too_large", "the file is larger than 64 MiB: use `scrm import purchases FILE`"
                    )
                out.write(chunk)
        name = (file.filename or "the upload")[:200]
        return _run(store, settings, caller, path, source, format, name, encoding=encoding)


@router.post("/import/rows", response_model=ImportAnswer, summary="Import order rows given as JSON")
def import_rows(
    body: OrderRows, store: StoreDep, settings: SettingsDep, caller: Annotated[Principal, marketer]
) -> Any:
    """Up to 10,000 orders as JSON objects with the columns of an order export; a bad row is reported
    with its position (``line``, from 1) and skipped, the others are stored."""
    with tempfile.TemporaryDirectory(prefix="scrm-import-") as folder:
        path = Path(folder) / "rows.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for row in body.rows:
                out.write(json.dumps(row.model_dump(exclude_none=True), ensure_ascii=False) + "\n")
        return _run(store, settings, caller, path, body.source, "jsonl", "the rows", encoding="utf-8")
