"""The CLI as a user meets it, on SQLite and PostgreSQL (``config_file`` is parametrised)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from scrm.cli import EXIT_REJECTED, cli

HEADER = "order_id,amount,time,phone,email,openid,name\n"


def scrm(runner: CliRunner, config: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
    return result.exit_code, result.output


def imported(runner: CliRunner, config: Path, path: Path, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code, out = scrm(runner, config, "import", "purchases", str(path), "--json", *extra)
    return code, json.loads(out)


@pytest.fixture
def ready(runner: CliRunner, config_file: Path) -> Path:
    code, out = scrm(runner, config_file, "init")
    assert code == 0, out
    assert "Created the schema" in out
    return config_file


def test_init_twice_is_safe(runner: CliRunner, ready: Path) -> None:
    code, out = scrm(runner, ready, "init")
    assert code == 0 and "already at revision" in out and "Accounts: brand" in out


def test_commands_refuse_an_uninitialised_store(runner: CliRunner, config_file: Path) -> None:
    code, out = scrm(runner, config_file, "customers")
    assert code == 1 and "run `scrm init`" in out


def test_import_reports_bad_rows_and_keeps_the_good_ones(
    runner: CliRunner, ready: Path, tmp_path: Path
) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        HEADER
        + "A1,100.00,2026-05-01 10:00,13800138000,,,李雷\n"
        + "A2,oops,2026-05-01 11:00,13800138000,,,\n"
        + "A3,50,2026-05-02 10:00,,li@example.com,,\n"
        + "A1,100.00,2026-05-01 10:00,13800138000,,,\n"
        + "A4,20,2026-05-03 10:00,13800138000,li@example.com,,\n"
        + "A5,30,2026-05-03 10:00,,,oBRAND1,韩梅梅\n",
        "utf-8",
    )
    code, report = imported(runner, ready, path)
    assert code == EXIT_REJECTED
    assert report["rows"] == 6 and report["imported"] == 4
    assert report["rejected"] == [
        {"line": 3, "error": "amount 'oops' is not a number"},
        {"line": 5, "error": "order A1 appears again (first on line 2)"},
    ]
    # the phone and the email met on line 6 within one import: one customer, no stored merge needed
    assert report["customers_created"] == 2

    code, out = scrm(runner, ready, "customers", "--json", "--sort", "spent")
    listing = json.loads(out)
    assert listing["total"] == 2
    top = listing["customers"][0]
    assert top["name"] == "李雷" and top["orders"] == 3 and top["spent_minor"] == {"CNY": 17000}
    assert sorted(top["keys"]) == ["email:li@example.com", "phone:+8613800138000"]


def test_reimport_changes_nothing_and_reports_changed_orders(
    runner: CliRunner, ready: Path, tmp_path: Path
) -> None:
    path = tmp_path / "orders.csv"
    rows = [f"O{i},{i}.50,2026-05-01 10:00,1380013{i:04d},,," for i in range(250)]
    path.write_text(HEADER + "\n".join(rows) + "\n", "utf-8")
    code, first = imported(runner, ready, path)
    assert code == 0 and first["imported"] == 250 and first["customers_created"] == 250
    code, second = imported(runner, ready, path)
    assert code == 0
    assert (second["imported"], second["already_stored"], second["customers_created"]) == (
        0,
        250,
        0,
    )
    rows[7] = "O7,999.00,2026-05-01 10:00,13800130007,,,"
    path.write_text(HEADER + "\n".join(rows) + "\n", "utf-8")
    code, third = imported(runner, ready, path)
    assert code == EXIT_REJECTED and third["imported"] == 0
    assert third["rejected"] == [
        {
            "line": 9,
            "error": "order O7 is already stored with other values "
            "(7.50 CNY at 2026-05-01T02:00:00+00:00); kept the stored order",
        }
    ]
    code, out = scrm(runner, ready, "customers", "--json", "--limit", "1000")
    assert json.loads(out)["total"] == 250


def set_reader(config: Path, mode: str) -> None:
    lines = config.read_text("utf-8").splitlines(keepends=True)
    text = "".join(line for line in lines if not line.startswith("reader_process"))
    config.write_text(text.replace("batch_size = 100", f'batch_size = 100\nreader_process = "{mode}"'))


@pytest.mark.parametrize("mode", ["never", "always"])
def test_an_import_cut_short_resumes_without_duplicates(
    runner: CliRunner, ready: Path, tmp_path: Path, mode: str
) -> None:
    set_reader(ready, mode)
    path = tmp_path / "orders.csv"
    good = [f"O{i},1,2026-05-01,1380013{i:04d},,,".encode() for i in range(300)]
    # batch_size is 100: three batches land, then an undecodable byte stops the import.
    path.write_bytes(HEADER.encode() + b"\n".join(good) + b"\nO300,1,2026-05-01,\xff\xfe,,,\n")
    code, out = scrm(runner, ready, "import", "purchases", str(path))
    assert code == 1 and "give --encoding" in out and "the rows before it were imported" in out
    code, out = scrm(runner, ready, "customers", "--json")
    assert json.loads(out)["total"] == 300
    path.write_bytes(HEADER.encode() + b"\n".join(good) + b"\nO300,1,2026-05-01,13800130300,,,\n")
    code, report = imported(runner, ready, path)
    assert code == 0 and report["imported"] == 1 and report["already_stored"] == 300


def test_customer_shows_identities_merges_and_purchases(
    runner: CliRunner, ready: Path, tmp_path: Path
) -> None:
    shop, mall, crm = tmp_path / "shop.csv", tmp_path / "mall.jsonl", tmp_path / "crm.csv"
    shop.write_text(HEADER + "S1,10,2026-05-01,13800138000,,,Li\n", "utf-8")
    mall.write_text('{"order_id": "M1", "amount": 20, "time": "2026-05-02", "email": "li@x.cn"}\n')
    crm.write_text(HEADER + "C1,30,2026-05-03,13800138000,LI@x.cn,,\n", "utf-8")
    assert imported(runner, ready, shop)[0] == 0
    assert imported(runner, ready, mall, "--source", "mall")[0] == 0
    code, report = imported(runner, ready, crm, "--source", "crm")
    assert code == 0
    (merge,) = report["merges"]
    assert merge["reason"] == "both customers carry email li@x.cn"
    kept, gone = merge["kept"], merge["merged"]

    code, out = scrm(runner, ready, "customer", str(gone), "--json")
    record = json.loads(out)
    assert code == 0 and record["id"] == kept and record["merged_from"] == gone
    assert [(i["kind"], i["source"]) for i in record["identities"]] == [
        ("phone", "import:shop"),
        ("email", "import:mall"),
    ]
    assert [p["order_id"] for p in record["purchases"]] == ["C1", "M1", "S1"]
    assert record["purchase_totals"] == {"CNY": {"orders": 3, "spent_minor": 6000}}
    code, out = scrm(runner, ready, "customer", str(kept))
    assert code == 0
    assert "both customers carry email li@x.cn" in out and "+8613800138000" in out


def test_search_and_paging(runner: CliRunner, ready: Path, tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_text(
        HEADER + "A,1,2026-05-01,13800138000,,,王芳\nB,1,2026-05-01,,wang_fang@x.cn,,\n"
        "C,1,2026-05-01,13900139000,,,100%\n",
        "utf-8",
    )
    imported(runner, ready, path)

    def search(text: str) -> list[str]:
        code, out = scrm(runner, ready, "customers", "--search", text, "--json")
        assert code == 0
        return [c["keys"][0] for c in json.loads(out)["customers"]]

    assert search("王") == ["phone:+8613800138000"]
    assert search("WANG_F") == ["email:wang_fang@x.cn"]  # _ is literal, not a wildcard
    assert search("00%") == ["phone:+8613900139000"]  # so is % (the name "100%")
    assert search("nobody") == []
    code, out = scrm(runner, ready, "customers", "--json", "--limit", "2", "--offset", "2")
    assert code == 0
    page = json.loads(out)
    assert page["total"] == 3 and len(page["customers"]) == 1


def test_unknown_customer_is_exit_1(runner: CliRunner, ready: Path) -> None:
    code, out = scrm(runner, ready, "customer", "424242")
    assert code == 1 and "no customer 424242" in out


def test_config_errors_are_one_clear_line(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[databse]\nurl = "x"\n', "utf-8")
    result = runner.invoke(cli, ["--config", str(bad), "init"])
    assert result.exit_code == 1
    assert f"{bad}: databse: unknown key" in result.output
    assert "Traceback" not in result.output


def test_unreachable_database_is_exit_1(runner: CliRunner, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[database]\nurl = "postgresql://x:pw@127.0.0.1:1/db?connect_timeout=2"\n')
    result = runner.invoke(cli, ["--config", str(cfg), "init"])
    assert result.exit_code == 1 and "cannot reach the database" in result.output
    assert ":pw@" not in result.output


def test_config_command_masks_secrets(runner: CliRunner, config_file: Path) -> None:
    code, out = scrm(runner, config_file, "config", "--json")
    assert code == 0 and "s3cret-value-never-printed" not in out
    assert json.loads(out)["accounts"]["brand"]["secret"] == "**********"


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, f"{prefix}{name} "))
    return found


@pytest.mark.parametrize(("name", "command"), _commands(cli), ids=lambda v: str(v))
def test_every_command_is_documented(runner: CliRunner, name: str, command: click.Command) -> None:
    assert command.help and len(command.help.strip()) > 20, f"`scrm {name}` has no help text"
    result = runner.invoke(cli, [*name.split(), "--help"])
    assert result.exit_code == 0 and "Usage: " in result.output
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden and param.name != "help":
            assert param.help, f"`scrm {name}` option {param.opts[0]} has no help text"


def test_the_reader_process_gives_the_same_report(runner: CliRunner, ready: Path, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    rows = [f"O{i},{i}.25,2026-05-01 10:{i % 60:02d},1380013{i % 97:04d},,," for i in range(1000)]
    rows[10] = "O10,ten,2026-05-01,13800138000,,,"
    rows[500] = rows[499]  # a duplicate order in the file
    path.write_text(HEADER + "\n".join(rows) + "\n", "utf-8")
    set_reader(ready, "always")
    code, report = imported(runner, ready, path)
    assert code == EXIT_REJECTED
    assert (report["rows"], report["imported"], report["customers_created"]) == (1000, 998, 97)
    assert report["rejected"] == [
        {"line": 12, "error": "amount 'ten' is not a number"},
        {"line": 502, "error": "order O499 appears again (first on line 501)"},
    ]
    set_reader(ready, "never")
    code, again = imported(runner, ready, path)
    assert (again["imported"], again["already_stored"]) == (0, 998)
    assert again["rejected"] == report["rejected"]


def test_merges_reach_purchases_of_every_batch(runner: CliRunner, ready: Path, tmp_path: Path) -> None:
    # batch_size is 100: phones in batch 1, emails in batch 2, both together in batch 3, so each
    # merge in batch 3 must also move purchases that batch 2 may still be writing.
    phones = [f"P{i},1,2026-05-01,1380013{i:04d},,," for i in range(100)]
    emails = [f"E{i},2,2026-05-02,,b{i}@x.cn,," for i in range(100)]
    both = [f"B{i},4,2026-05-03,1380013{i:04d},b{i}@x.cn,," for i in range(100)]
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + "\n".join(phones + emails + both) + "\n", "utf-8")
    code, report = imported(runner, ready, path)
    assert code == 0 and report["imported"] == 300 and len(report["merges"]) == 100
    code, out = scrm(runner, ready, "customers", "--json", "--limit", "1000")
    listing = json.loads(out)
    assert listing["total"] == 100
    assert {c["orders"] for c in listing["customers"]} == {3}
    assert {c["spent_minor"]["CNY"] for c in listing["customers"]} == {700}


def test_amounts_keep_their_currency_decimals(runner: CliRunner, ready: Path, tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_text(
        "order_id,amount,currency,time,email\nJ1,1500,JPY,2026-05-01,a@x.cn\nK1,1.250,KWD,2026-05-01,a@x.cn\n",
        "utf-8",
    )
    assert imported(runner, ready, path)[0] == 0
    code, out = scrm(runner, ready, "customers", "--json")
    assert json.loads(out)["customers"][0]["spent_minor"] == {"JPY": 1500, "KWD": 1250}
    code, out = scrm(runner, ready, "customers")
    assert code == 0 and "1,500 JPY" in out and "1.250 KWD" in out
