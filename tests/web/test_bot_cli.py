"""`scrm bot rules` and `scrm bot try` through the CLI, as an operator uses them."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from scrm.cli import cli


def test_rules_are_listed_in_the_order_they_are_tried(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[bot.rules.late]\nmatch = "contains"\nkeywords = ["open"]\ntemplate = "help.txt.j2"\n'
        'active_hours = "22:00-06:00"\n\n'
        '[bot.rules.first]\nmatch = "click"\nkey = "MENU_A"\ntemplate = "help.txt.j2"\npriority = 9\n',
        encoding="utf-8",
    )
    result = runner.invoke(cli, ["--config", str(config), "bot", "rules", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["name"], r["on"], r["active_hours"]) for r in rows] == [
        ("first", "MENU_A", "always"),
        ("late", "open", "22:00-06:00"),
    ]


def test_try_shows_the_rule_and_the_reply(runner: CliRunner, config_file: Path) -> None:
    welcome = runner.invoke(
        cli, ["--config", str(config_file), "bot", "try", "--event", "subscribe", "--scene", "store_bj_01"]
    )
    assert welcome.exit_code == 0, welcome.output
    assert welcome.output.startswith("rule: welcome\nWelcome!") and "through store_bj_01" in welcome.output
    other = runner.invoke(cli, ["--config", str(config_file), "bot", "try", "where are you?", "--json"])
    answer = json.loads(other.output)
    assert answer["rule"] == "fallback" and answer["text"].startswith("Thank you for your message")
    click = runner.invoke(cli, ["--config", str(config_file), "bot", "try", "--event", "click", "--key", "X"])
    assert click.output.strip() == "rule: (none: answered success)"
