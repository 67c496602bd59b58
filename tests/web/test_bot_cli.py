"""`scrm bot rules` and `scrm bot try` through the CLI, as an operator uses them."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from connectors.wechat_sim import SimulatorServer
from scrm.cli import cli
from scrm.store import Store
from scrm.web.replay import replay
from tests.web.bot_env import count, load, write_config


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


def test_replay_pushes_simulated_followers_actions_through_the_bot(
    wechat_sim: SimulatorServer, store: Store, tmp_path: Path
) -> None:
    settings = load(write_config(tmp_path, store.url, wechat_sim))
    start = wechat_sim.population.start.timestamp()
    actions = [a for a in wechat_sim.actions(int(start), int(start) + 7 * 86400) if a.kind != "unsubscribe"][
        :12
    ]
    exchanges = replay(settings, store, "brand", actions)
    assert [e.status for e in exchanges] == [200] * len(actions)
    for e in exchanges:
        if e.action.kind == "subscribe":
            scene = e.action.key.removeprefix("qrscene_")
            assert e.reply.startswith("Welcome!") and (not scene or f"through {scene}" in e.reply)
        elif e.action.kind == "text":
            assert e.reply  # help or the default reply
        else:
            assert e.reply == ""  # clicks and scans: no rule, answered success
    assert count(store, "inbound_message") == len({(a.openid, a.time, a.msgid) for a in actions})
