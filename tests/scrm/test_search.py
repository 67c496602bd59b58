"""Customer search through ``scrm customers --search`` on SQLite and PostgreSQL: what a text matches
(3+ characters anywhere in a name or key, shorter ones the start of a name) and that the trigram
indexes of migration 0009 follow imports, merges and unmerges."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from graph.snapshots import bulk_insert
from scrm.cli import cli
from scrm.config import load_settings
from scrm.models import Customer
from scrm.purchases import utc_text
from scrm.queries import list_customers
from scrm.search import catch_up
from scrm.store import Store

HEADER = "order_id,amount,time,phone,email,openid,name\n"
ROWS = (
    "A,1,2026-05-01,13800138000,,,王伟37\n"
    "B,1,2026-05-01,,Li.Na@Example.com,,李娜\n"
    "C,1,2026-05-01,13912345678,,,Anna Smith\n"
    "D,1,2026-05-01,,,oAbCdEf01234,customer 12\n"
    "E,1,2026-05-01,,,oE0000e,customer 123\n"
    'F,1,2026-05-01,,"x""y@example.org",,王芳\n'
)


def scrm(runner: CliRunner, config: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def ready(runner: CliRunner, config_file: Path, tmp_path: Path) -> Path:
    assert scrm(runner, config_file, "init")[0] == 0
    orders = tmp_path / "orders.csv"
    orders.write_text(HEADER + ROWS, "utf-8")
    code, out = scrm(runner, config_file, "import", "purchases", str(orders))
    assert code == 0, out
    return config_file


def names(runner: CliRunner, config: Path, text: str) -> list[str]:
    code, out = scrm(runner, config, "customers", "--search", text, "--json")
    assert code == 0, out
    page = json.loads(out)
    assert page["total"] == len(page["customers"])
    return sorted(c["name"] for c in page["customers"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+8613800138000", ["王伟37"]),  # a whole phone
        ("13800138", ["王伟37"]),  # part of it
        ("5678", ["Anna Smith"]),  # its last digits
        ("li.na@example.com", ["李娜"]),  # an email, whatever its case
        ("EXAMPLE", ["李娜", "王芳"]),  # part of two emails
        ("oAbCdEf01234", ["customer 12"]),  # an openid
        ("cdef012", ["customer 12"]),  # part of it, any case
        ("伟37", ["王伟37"]),  # part of a Chinese name (3 characters)
        ("王伟37", ["王伟37"]),
        ("nna smi", ["Anna Smith"]),  # part of a Latin name, with its space
        ("SMITH", ["Anna Smith"]),
        ("customer 12", ["customer 12", "customer 123"]),
        ("王", ["王伟37", "王芳"]),  # one or two characters: the start of a name
        ("王芳", ["王芳"]),
        ("an", ["Anna Smith"]),  # capitalised too
        ("na", []),  # not the middle of a name
        ("伟", []),
        ("  王芳  ", ["王芳"]),  # surrounding spaces do not count
        ("nobody", []),
    ],
)
def test_search_matches(runner: CliRunner, ready: Path, text: str, expected: list[str]) -> None:
    assert names(runner, ready, text) == expected


@pytest.mark.parametrize("text", ['"x"y', 'x"y', "a OR b", "NEAR(a b)", "*", "x%y", "y_e", "\\", "'; --"])
def test_search_syntax_is_literal(runner: CliRunner, ready: Path, text: str) -> None:
    """Quotes, FTS5 operators and LIKE wildcards are matched as written, never an error."""
    expected = ["王芳"] if text in ('x"y',) else []
    assert names(runner, ready, text) == expected


def test_index_follows_new_rows_merges_and_unmerges(runner: CliRunner, ready: Path, tmp_path: Path) -> None:
    more = tmp_path / "more.csv"
    rows = "G,1,2026-05-02,13800138000,zhao@shop.cn,,\nH,1,2026-05-02,,lei@zhao.cn,,赵雷雷\n"
    more.write_text(HEADER + rows, "utf-8")
    assert scrm(runner, ready, "import", "purchases", str(more))[0] == 0
    assert names(runner, ready, "zhao@shop") == ["王伟37"]  # a key added to a known customer
    assert names(runner, ready, "雷雷") == []  # two characters: start of a name only
    assert names(runner, ready, "赵雷雷") == ["赵雷雷"]

    def ids(text: str) -> list[int]:
        code, out = scrm(runner, ready, "customers", "--search", text, "--json")
        assert code == 0, out
        return [c["id"] for c in json.loads(out)["customers"]]

    (kept,), (gone,) = ids("王伟37"), ids("赵雷雷")
    code, out = scrm(runner, ready, "merge", str(kept), str(gone), "--reason", "same person", "--json")
    assert code == 0, out
    assert ids("赵雷雷") == []  # a merged customer is left out
    assert ids("lei@zhao") == [kept]  # its keys moved to the kept one
    code, out = scrm(runner, ready, "unmerge", str(json.loads(out)["merge_id"]), "--json")
    assert code == 0, out
    assert ids("赵雷雷") == [gone]
    assert ids("lei@zhao") == [gone]


def test_rows_changed_after_indexing_are_found_by_their_new_value(
    runner: CliRunner, ready: Path, tmp_path: Path
) -> None:
    """No command renames or deletes customers today; should one, the index follows (SQLite keeps
    the rows it indexed in step by triggers, PostgreSQL's indexes are ordinary ones)."""
    assert names(runner, ready, "Anna Smith") == ["Anna Smith"]  # indexed now
    url = load_settings(ready).database_url
    store = Store(url)
    with store.connect() as conn:
        conn.execute(
            sa.text("UPDATE customer SET display_name = 'Anna Jones' WHERE display_name = 'Anna Smith'")
        )
        conn.execute(sa.text("UPDATE identity SET value = '+8613912340000' WHERE value = '+8613912345678'"))
    store.close()
    assert names(runner, ready, "Smith") == [] and names(runner, ready, "5678") == []
    assert names(runner, ready, "Jones") == ["Anna Jones"] and names(runner, ready, "1234000") == [
        "Anna Jones"
    ]


def test_concurrent_searches_index_new_rows_once(tmp_path: Path) -> None:
    """SQLite: several searches arriving together after a bulk write index the new rows once (one
    of them takes the write lock, the others find nothing left), and the FTS5 index stays sound."""
    url = f"sqlite:///{tmp_path / 'scrm.db'}"
    store = Store(url)
    store.upgrade()
    now = utc_text(datetime.now(UTC))
    rows = [(i, f"name {i}", now) for i in range(1, 5001)]
    with store.connect() as conn:
        bulk_insert(conn, Customer.__table__, ("id", "display_name", "created_at"), rows)  # type: ignore[attr-defined]
    indexed: list[int] = []

    def search() -> None:
        own = Store(url)
        with own.connect() as conn:
            indexed.append(catch_up(conn))
        own.close()

    threads = [threading.Thread(target=search) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(indexed) == [0, 0, 0, 5000]
    with store.connect() as conn:  # raises if the index and the table disagree
        conn.exec_driver_sql(
            "INSERT INTO customer_name_fts(customer_name_fts, rank) VALUES ('integrity-check', 1)"
        )
    assert list_customers(store, search="name 123")[0] == 11  # 123, 1230-1239
    store.close()
