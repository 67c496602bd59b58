"""`scrm token create|list|revoke` and `scrm user add`, through the CLI as an admin uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from scrm.access import authenticate_token, check_login
from scrm.cli import cli
from scrm.errors import AccessError
from scrm.store import Store


@pytest.fixture
def config(runner: CliRunner, config_file: Path) -> Path:
    result = runner.invoke(cli, ["--config", str(config_file), "init"])
    assert result.exit_code == 0, result.output
    return config_file


def scrm(runner: CliRunner, config: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(cli, ["--config", str(config), *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_a_token_is_printed_once_listed_without_it_and_revoked(
    runner: CliRunner, config: Path, database_url: str
) -> None:
    code, out, err = scrm(runner, config, "token", "create", "--name", "crm sync", "--role", "marketer")
    assert code == 0, err
    token = out.strip()
    assert token.startswith("scrm_") and len(token) > 40 and "scrm token revoke 1" in err
    store = Store(database_url)
    try:
        assert authenticate_token(store, token).role == "marketer"
        code, out, _ = scrm(runner, config, "token", "list", "--json")
        (row,) = json.loads(out)["tokens"]
        assert code == 0 and row["name"] == "crm sync" and row["role"] == "marketer"
        assert token not in out and row["prefix"] == token[:12] and row["revoked_at"] is None
        code, out, _ = scrm(runner, config, "token", "list")
        assert code == 0 and "crm sync" in out and token not in out
        code, out, _ = scrm(runner, config, "token", "revoke", str(row["id"]))
        assert code == 0 and "revoked" in out
        with pytest.raises(AccessError):
            authenticate_token(store, token)
        code, _, err = scrm(runner, config, "token", "revoke", str(row["id"]))
        assert code == 1 and "no active API token" in err
    finally:
        store.close()


def test_token_create_as_json_and_bad_usage(runner: CliRunner, config: Path) -> None:
    code, out, _ = scrm(runner, config, "token", "create", "--name", "ci", "--role", "viewer", "--json")
    row = json.loads(out)
    assert code == 0 and row["role"] == "viewer" and row["token"].startswith(row["prefix"])
    code, _, err = scrm(runner, config, "token", "create", "--name", "x", "--role", "root")
    assert code == 2 and "root" in err
    code, _, err = scrm(runner, config, "token", "create", "--name", " ", "--role", "viewer")
    assert code == 1 and "token name" in err
    code, _, err = scrm(runner, config, "token", "revoke", "abc")
    assert code == 2


def test_user_add_from_stdin_and_prompt(runner: CliRunner, config: Path, database_url: str) -> None:
    code, out, err = scrm(
        runner, config, "user", "add", "mei", "--role", "admin", "--password-stdin", stdin="long enough pw\n"
    )
    assert code == 0, err
    assert "mei" in out and "long enough pw" not in out
    code, _, err = scrm(
        runner, config, "user", "add", "li", "--role", "viewer", stdin="secret-pw\nsecret-pw\n"
    )
    assert code == 0, err
    code, _, err = scrm(
        runner, config, "user", "add", "wu", "--role", "viewer", "--password-stdin", stdin="short\n"
    )
    assert code == 1 and "at least 8" in err
    store = Store(database_url)
    try:
        assert check_login(store, "mei", "long enough pw").role == "admin"
        assert check_login(store, "li", "secret-pw").role == "viewer"
        with pytest.raises(AccessError):
            check_login(store, "wu", "short")
    finally:
        store.close()
