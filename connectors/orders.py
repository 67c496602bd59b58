"""Read a shop's order export (CSV or JSON Lines) into validated purchase records.

Columns (CSV header or JSON keys); names are case-insensitive, other columns are ignored and reported:

==========  ========  ==============================================================================
column      required  meaning
==========  ========  ==============================================================================
order_id    yes       the shop's order number; one order is stored once however often it is imported
amount      yes       order total in major units, e.g. ``128.50``; a refund is a negative amount
time        yes       ISO 8601 (``2026-05-01T12:30:00+08:00``, ``2026-05-01 12:30``) or unix seconds;
                      a time without offset is read in the configured time zone
currency    no        ISO 4217 code (``CNY``); the configured default when empty
openid      one of    the buyer's openid on one of our WeChat accounts (see ``account``)
unionid     these     the buyer's WeChat unionid
phone       four      the buyer's phone number (normalised to E.164, default region from config)
email                 the buyer's email address (lower-cased)
account     no        the config name of the account an openid belongs to (needed with several)
name        no        the buyer's name, used when the customer is new
==========  ========  ==============================================================================

A row that breaks a rule becomes a :class:`RowError` with its line number; the others are yielded as
:class:`PurchaseRecord` in batches, so that a file of millions of rows streams in bounded memory.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import IO, Literal, NamedTuple

import phonenumbers

from scrm.errors import ImportFileError
from scrm.identity import Key
from scrm.models import IdentityKind
from scrm.money import exponent

__all__ = [
    "COLUMNS",
    "KEY_COLUMNS",
    "OrderReader",
    "PurchaseRecord",
    "RowError",
    "amount_to_minor",
    "normalise_email",
    "normalise_phone",
]

KEY_COLUMNS = ("openid", "unionid", "phone", "email")
COLUMNS = ("order_id", "amount", "currency", "time", *KEY_COLUMNS, "account", "name")
_REQUIRED = ("order_id", "amount", "time")
Format = Literal["csv", "jsonl"]


class PurchaseRecord(NamedTuple):
    line: int
    order_id: str
    keys: tuple[Key, ...]
    amount_minor: int
    currency: str
    occurred_at: datetime
    name: str


class RowError(NamedTuple):
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def amount_to_minor(text: str, currency: str) -> int:
    """An amount in major units as an exact integer of minor units.

    >>> amount_to_minor("128.5", "CNY")
    12850
    >>> amount_to_minor("-3", "JPY")
    -3
    >>> amount_to_minor("1.005", "CNY")
    Traceback (most recent call last):
    ...
    ValueError: amount '1.005' has more decimals than CNY allows (2)
    """
    places = exponent(currency)
    # Fast path for the plain form ("-123.45"); anything else goes through Decimal.
    body = text[1:] if text[:1] == "-" else text
    whole, _, frac = body.partition(".")
    plain = whole.isascii() and whole.isdigit() and (not frac or (frac.isascii() and frac.isdigit()))
    if plain and len(frac) <= places:
        minor: int = int(whole) * 10**places + (int(frac.ljust(places, "0")) if places else 0)
        return -minor if body is not text else minor
    if not text.isascii():
        raise ValueError(f"amount {text!r} is not a number")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"amount {text!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"amount {text!r} is not a number")
    minor_d = value.scaleb(places)
    if minor_d != minor_d.to_integral_value():
        raise ValueError(f"amount {text!r} has more decimals than {currency} allows ({places})")
    return int(minor_d)


@lru_cache(maxsize=1 << 18)
def normalise_phone(raw: str, region: str = "CN") -> str:
    """A phone number in E.164 form.

    Mainland China mobile numbers in their usual 11-digit form (1, then 3-9, then 9 digits) are taken
    by shape when the region is CN, so a newly allocated prefix is never refused for stale metadata;
    every other form is parsed and checked by ``phonenumbers``.

    >>> normalise_phone("138 0013 8000")
    '+8613800138000'
    >>> normalise_phone("+1 (650) 253-0000")
    '+16502530000'
    """
    if (
        region == "CN"
        and len(raw) == 11
        and raw.isascii()
        and raw.isdigit()
        and raw[0] == "1"
        and raw[1] in "3456789"
    ):
        return "+86" + raw
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise ValueError(f"phone {raw!r} is not a phone number") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"phone {raw!r} is not a possible number for its region")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def normalise_email(raw: str) -> str:
    """An email address trimmed and lower-cased.

    >>> normalise_email(" Li.Lei@Example.COM ")
    'li.lei@example.com'
    """
    value = raw.strip().lower()
    local, _, domain = value.partition("@")
    if not local or "." not in domain or " " in value or domain.startswith("."):
        raise ValueError(f"email {raw!r} is not an email address")
    return value


def _parse_time(text: str, tz: tzinfo) -> datetime:
    if text.isdigit():
        return datetime.fromtimestamp(int(text), UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"time {text!r} is not ISO 8601 (2026-05-01 12:30:00[+08:00]) nor unix seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


class OrderReader:
    """Validated purchase records from an order export.

    Parameters
    ----------
    path
        The file; its format is taken from ``format`` or the suffix (.csv, .jsonl/.ndjson).
    tz
        Time zone for times written without an offset.
    accounts
        Config account name -> appid of our WeChat accounts, to scope openids.
    default_currency, phone_region, encoding
        From the ``[import]`` settings.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        tz: tzinfo,
        accounts: Mapping[str, str],
        format: Format | None = None,
        default_currency: str = "CNY",
        phone_region: str = "CN",
        encoding: str = "utf-8-sig",
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ImportFileError(f"{self.path}: no such file")
        suffix = self.path.suffix.lower()
        detected: Format | None = (
            "csv" if suffix == ".csv" else "jsonl" if suffix in (".jsonl", ".ndjson") else None
        )
        if format is None and detected is None:
            raise ImportFileError(
                f"{self.path}: cannot tell the format from the name; give --format csv or jsonl"
            )
        self.format: Format = format or detected  # type: ignore[assignment]
        self.tz, self.accounts = tz, dict(accounts)
        self.default_currency, self.phone_region, self.encoding = (
            default_currency,
            phone_region,
            encoding,
        )
        self.size = self.path.stat().st_size
        self.ignored_columns: list[str] = []
        self.bytes_read = 0

    # -- rows ---------------------------------------------------------------------------------------

    def _record(self, line: int, v: list[str]) -> PurchaseRecord:
        """Validate one row; ``v`` holds the stripped values in :data:`COLUMNS` order."""
        order_id, amount_text, currency, time_text, openid, unionid, phone, email, account, name = v
        if not order_id:
            raise ValueError("order_id is empty")
        if len(order_id) > 128:
            raise ValueError("order_id is longer than 128 characters")
        currency = currency.upper() if currency else self.default_currency
        if len(currency) != 3 or not currency.isalpha():
            raise ValueError(f"currency {currency!r} is not an ISO 4217 code")
        if not amount_text:
            raise ValueError("amount is empty")
        amount = amount_to_minor(amount_text, currency)
        if not time_text:
            raise ValueError("time is empty")
        occurred_at = _parse_time(time_text, self.tz)
        keys: list[Key] = []
        if openid:
            if account:
                if account not in self.accounts:
                    known = ", ".join(sorted(self.accounts)) or "none configured"
                    raise ValueError(f"account {account!r} is not a WeChat account ({known})")
                scope = self.accounts[account]
            elif len(self.accounts) == 1:
                scope = next(iter(self.accounts.values()))
            else:
                raise ValueError(
                    "openid needs an account: fill the 'account' column"
                    if self.accounts
                    else "openid needs a WeChat account: configure [accounts.NAME] first"
                )
            keys.append(Key(IdentityKind.OPENID, scope, openid))
        if unionid:
            keys.append(Key(IdentityKind.UNIONID, "", unionid))
        if phone:
            keys.append(Key(IdentityKind.PHONE, "", normalise_phone(phone, self.phone_region)))
        if email:
            keys.append(Key(IdentityKind.EMAIL, "", normalise_email(email)))
        if not keys:
            raise ValueError("no customer key: fill openid, unionid, phone or email")
        for key in keys:
            if len(key.value) > 255:
                raise ValueError(f"{key.kind} is longer than 255 characters")
        return PurchaseRecord(line, order_id, tuple(keys), amount, currency, occurred_at, name[:200])

    def _check_columns(self, names: list[str]) -> dict[str, int]:
        index = {}
        for i, name in enumerate(names):
            clean = name.strip().lower()
            if clean in COLUMNS and clean not in index:
                index[clean] = i
            elif clean:
                self.ignored_columns.append(name)
        missing = [c for c in _REQUIRED if c not in index]
        if missing:
            raise ImportFileError(
                f"{self.path}: the header lacks {', '.join(missing)} (columns: {', '.join(COLUMNS)})"
            )
        if not any(c in index for c in KEY_COLUMNS):
            raise ImportFileError(
                f"{self.path}: the header has no customer key column (one of {', '.join(KEY_COLUMNS)})"
            )
        return index

    def _csv_rows(self, text: Iterator[str]) -> Iterator[PurchaseRecord | RowError]:
        reader = csv.reader(text)
        try:
            header = next(reader)
        except StopIteration:
            raise ImportFileError(f"{self.path}: the file is empty") from None
        index = self._check_columns(header)
        width = len(header)
        positions = [index.get(column, -1) for column in COLUMNS]
        record = self._record
        for row in reader:
            line = reader.line_num
            if len(row) != width:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                yield RowError(line, f"{len(row)} fields where the header has {width}")
                continue
            try:
                yield record(line, [row[i].strip() if i >= 0 else "" for i in positions])
            except ValueError as exc:
                yield RowError(line, str(exc))

    def _jsonl_rows(self, text: Iterator[str]) -> Iterator[PurchaseRecord | RowError]:
        seen_columns: set[str] = set()
        for line, raw in enumerate(text, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                yield RowError(line, f"not valid JSON: {exc.msg} at column {exc.colno}")
                continue
            if not isinstance(obj, dict):
                yield RowError(line, "not a JSON object")
                continue
            fields: dict[str, str | None] = {}
            for name, value in obj.items():
                clean = str(name).strip().lower()
                if clean not in COLUMNS:
                    if name not in seen_columns:
                        seen_columns.add(name)
                        self.ignored_columns.append(name)
                    continue
                if isinstance(value, (dict, list, bool)):
                    fields[clean] = None
                else:
                    fields[clean] = "" if value is None else str(value).strip()
            bad = [c for c, v in fields.items() if v is None]
            if bad:
                yield RowError(line, f"{', '.join(bad)}: expected a string or number")
                continue
            try:
                yield self._record(line, [fields.get(column) or "" for column in COLUMNS])
            except ValueError as exc:
                yield RowError(line, str(exc))

    def _lines(self, raw: IO[bytes]) -> Iterator[str]:
        """Decode in large blocks; a bad byte stops the import exactly at its line."""
        decoder = codecs.getincrementaldecoder(self.encoding)()
        number = 0
        rest = b""
        while True:
            block = raw.read(1 << 20)
            data = rest + block
            if not data:
                return
            cut = data.rfind(b"\n") + 1 if block else len(data)
            if cut == 0:  # no newline yet: read more
                rest = data
                continue
            chunk, rest = data[:cut], data[cut:]
            try:
                lines = list(io.StringIO(decoder.decode(chunk), newline=""))
            except UnicodeDecodeError:
                lines = []
                for binary in io.BytesIO(chunk):
                    try:
                        lines.append(decoder.decode(binary))
                    except UnicodeDecodeError as exc:
                        yield from lines
                        raise ImportFileError(
                            f"{self.path}: line {number + len(lines) + 1} is not {self.encoding} text "
                            f"({exc.reason}); the rows before it were imported; give --encoding "
                            "(for example gbk) and import the file again"
                        ) from None
            number += len(lines)
            self.bytes_read += len(chunk)
            yield from lines
            if not block:
                return

    def __iter__(self) -> Iterator[PurchaseRecord | RowError]:
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ImportFileError(f"unknown encoding {self.encoding!r}") from None
        self.bytes_read = 0
        with self.path.open("rb") as raw:
            lines = self._lines(raw)
            try:
                if self.format == "csv":
                    yield from self._csv_rows(lines)
                else:
                    yield from self._jsonl_rows(lines)
            except csv.Error as exc:
                raise ImportFileError(f"{self.path}: not readable as CSV: {exc}") from None
