"""The order export reader: every rule of the format, through OrderReader's public iteration."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connectors.orders import OrderReader, PurchaseRecord, RowError
from scrm.errors import ImportFileError
from scrm.identity import Key

SHANGHAI = ZoneInfo("Asia/Shanghai")


def read(path: Path, **kwargs: object) -> list[PurchaseRecord | RowError]:
    options: dict[str, object] = {"tz": SHANGHAI, "accounts": {"brand": "wxbrand"}, **kwargs}
    return list(OrderReader(path, **options))  # type: ignore[arg-type]


def test_a_good_csv_row(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_text(
        "Order_ID,amount,time,currency,phone,email,openid,name,coupon\n"
        "A1, 128.50 ,2026-05-01 20:00,cny,138 0013 8000,Li@Example.com,oX1,李雷,SAVE5\n",
        encoding="utf-8",
    )
    reader = OrderReader(path, tz=SHANGHAI, accounts={"brand": "wxbrand"})
    (record,) = list(reader)
    assert isinstance(record, PurchaseRecord)
    assert record.line == 2 and record.order_id == "A1" and record.name == "李雷"
    assert (record.amount_minor, record.currency) == (12850, "CNY")
    assert record.occurred_at == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert record.keys == (
        Key("openid", "wxbrand", "oX1"),
        Key("phone", "", "+8613800138000"),
        Key("email", "", "li@example.com"),
    )
    assert reader.ignored_columns == ["coupon"]


BAD_ROWS = [
    (",1,2026-05-01,,138 0013 8000", "order_id is empty"),
    ("A,abc,2026-05-01,,138 0013 8000", "amount 'abc' is not a number"),
    ("A,NaN,2026-05-01,,138 0013 8000", "amount 'NaN' is not a number"),
    ("A,٣,2026-05-01,,138 0013 8000", "amount '٣' is not a number"),
    ("A,-,2026-05-01,,138 0013 8000", "amount '-' is not a number"),
    ("A,1.234,2026-05-01,,138 0013 8000", "more decimals than CNY allows"),
    ("A,1,yesterday,,138 0013 8000", "time 'yesterday' is not ISO 8601"),
    ("A,1,2026-05-01,RMB1,138 0013 8000", "currency 'RMB1' is not an ISO 4217 code"),
    ("A,1,2026-05-01,,", "no customer key"),
    ("A,1,2026-05-01,,12", "phone '12' is not"),
    ("A,1,2026-05-01,,hello", "phone 'hello' is not a phone number"),
    ("A,1,2026-05-01,,138 0013 8000,extra", "6 fields where the header has 5"),
    ("A,1,,,138 0013 8000", "time is empty"),
]


@pytest.mark.parametrize(("row", "message"), BAD_ROWS)
def test_bad_rows_are_reported_with_their_line(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "o.csv"
    good = "G,1,2026-05-01,,13800138000"
    path.write_text(f"order_id,amount,time,currency,phone\n{good}\n{row}\n{good}\n", "utf-8")
    items = read(path)
    assert [type(i).__name__ for i in items] == ["PurchaseRecord", "RowError", "PurchaseRecord"]
    error = items[1]
    assert isinstance(error, RowError) and error.line == 3
    assert message in error.message


def test_openid_scoping(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_text(
        "order_id,amount,time,openid,account\nA,1,2026-05-01,o1,\nB,1,2026-05-01,o2,other\n"
        "C,1,2026-05-01,o3,two\n",
        "utf-8",
    )
    one, unknown, two = read(path, accounts={"one": "wx1", "two": "wx2"})
    assert isinstance(one, RowError) and "fill the 'account' column" in one.message
    assert isinstance(unknown, RowError) and "account 'other' is not a WeChat account" in unknown.message
    assert isinstance(two, PurchaseRecord) and two.keys == (Key("openid", "wx2", "o3"),)
    path.write_text("order_id,amount,time,openid\nA,1,2026-05-01,o1\n", "utf-8")
    (nothing,) = read(path, accounts={})
    assert isinstance(nothing, RowError) and "configure [accounts.NAME]" in nothing.message


def test_times_with_offsets_and_unix_seconds(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    path.write_text(
        '{"order_id": "A", "amount": 1, "time": "2026-05-01T12:00:00Z", "email": "a@b.cn"}\n'
        '{"order_id": "B", "amount": 2.5, "time": 1777636800, "email": "a@b.cn"}\n'
        '{"order_id": "C", "amount": "3", "time": "2026-05-01T21:00:00+09:00", "email": "a@b.cn"}\n',
        "utf-8",
    )
    times = [r.occurred_at for r in read(path) if isinstance(r, PurchaseRecord)]
    assert times == [datetime(2026, 5, 1, 12, 0, tzinfo=UTC)] * 3


def test_jsonl_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    path.write_text(
        '{"order_id": "A", "amount": 1, "time": "2026-05-01", "email": "a@b.cn", "x": 1}\n'
        "{not json\n"
        "[1, 2]\n"
        "\n"
        '{"order_id": "B", "amount": {"v": 1}, "time": "2026-05-01", "email": "a@b.cn"}\n'
        '{"order_id": "C", "amount": 1, "time": "2026-05-01", "email": "nobody"}\n',
        "utf-8",
    )
    reader = OrderReader(path, tz=SHANGHAI, accounts={})
    items = list(reader)
    assert [(i.line, i.message.split(":")[0]) for i in items if isinstance(i, RowError)] == [
        (2, "not valid JSON"),
        (3, "not a JSON object"),
        (5, "amount"),
        (6, "email 'nobody' is not an email address"),
    ]
    assert reader.ignored_columns == ["x"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ("order_id,amount,phone\n", "the header lacks time"),
        ("order_id,amount,time,coupon\n", "no customer key column"),
    ],
)
def test_unusable_files_are_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "o.csv"
    path.write_text(content, "utf-8")
    with pytest.raises(ImportFileError, match=message):
        read(path)


def test_unknown_format_missing_file_and_wrong_encoding(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="give --format"):
        read(Path(__file__))
    with pytest.raises(ImportFileError, match="no such file"):
        read(tmp_path / "missing.csv")
    path = tmp_path / "gbk.csv"
    path.write_bytes("order_id,amount,time,phone,name\nA,1,2026-05-01,13800138000,李雷\n".encode("gbk"))
    with pytest.raises(ImportFileError, match="give --encoding"):
        read(path)
    (record,) = read(path, encoding="gbk")
    assert isinstance(record, PurchaseRecord) and record.name == "李雷"


def test_a_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("order_id,amount,time,phone\nA,1,2026-05-01,13800138000\n".encode("utf-8-sig"))
    (record,) = read(path)
    assert isinstance(record, PurchaseRecord)
