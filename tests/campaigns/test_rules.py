"""Reply rules: every kind, priority, active hours (local time, wrapping midnight), template failures."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine

from campaigns.render import Renderer
from campaigns.rules import FALLBACK_TEXT, Rulebook
from scrm.bot_settings import BotSettings
from scrm.config import load_settings
from scrm.errors import ConfigError, TemplateError
from scrm.inbound import InboundRecord

SHANGHAI = ZoneInfo("Asia/Shanghai")
T = datetime(2026, 5, 1, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


def rec(kind: str, content: str = "", *, scene: str = "", key: str = "", msg_id: int = 0) -> InboundRecord:
    return InboundRecord("wechat", "wx1", "o1", kind, T, msg_id, content, scene, key)


RULES = {
    "price": {"match": "exact", "keywords": ["Price", "价格"], "template": "help.txt.j2", "priority": 5},
    "sale": {"match": "contains", "keywords": ["sale"], "template": "help.txt.j2"},
    "order": {"match": "regex", "pattern": r"order\s+#?\d{6}", "template": "help.txt.j2"},
    "kol": {"match": "subscribe", "scene": "kol_*", "template": "welcome.txt.j2", "priority": 1},
    "referral": {"match": "subscribe", "scene": "ref_*", "template": "welcome.txt.j2", "priority": 1},
    "welcome": {"match": "subscribe", "template": "welcome.txt.j2"},
    "store_scan": {"match": "scan", "scene": "store_bj_01", "template": "welcome.txt.j2"},
    "news": {
        "match": "click",
        "key": "MENU_NEWS",
        "articles": [{"title": "News for {{ openid }}", "url": "https://example.com/n?c={{ channel }}"}],
    },
    "fallback": {"match": "default", "template": "default.txt.j2", "priority": -10},
}


def book(rules: dict[str, dict[str, object]] = RULES, renderer: Renderer | None = None) -> Rulebook:
    return Rulebook(BotSettings.model_validate({"rules": rules}), SHANGHAI, renderer)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (rec("text", "price"), "price"),  # exact, case-insensitive
        (rec("text", " 价格 "), "price"),
        (rec("text", "price please"), "fallback"),  # not exact
        (rec("text", "Is the SALE on?"), "sale"),
        (rec("text", "where is order #123456"), "order"),
        (rec("text", "order 12345"), "fallback"),
        (rec("image"), "fallback"),
        (rec("subscribe", scene="kol_xiaohong"), "kol"),
        (rec("subscribe", scene="ref_o99"), "referral"),
        (rec("subscribe", scene="poster_mall_sh"), "welcome"),
        (rec("subscribe"), "welcome"),
        (rec("scan", scene="store_bj_01"), "store_scan"),
        (rec("scan", scene="store_sh_02"), None),
        (rec("click", key="MENU_NEWS"), "news"),
        (rec("click", key="MENU_OTHER"), None),
        (rec("unsubscribe"), None),
    ],
)
def test_each_kind_of_rule(record: InboundRecord, expected: str | None) -> None:
    rule = book().match(record, T)
    assert (rule.name if rule else None) == expected


def test_priority_then_file_order() -> None:
    rules = {
        "first_contains": {"match": "contains", "keywords": ["hi"], "template": "help.txt.j2"},
        "second_contains": {"match": "contains", "keywords": ["hi"], "template": "help.txt.j2"},
        "urgent": {"match": "regex", "pattern": "hi", "template": "help.txt.j2", "priority": 3},
    }
    assert book(rules).match(rec("text", "hi"), T).name == "urgent"  # type: ignore[union-attr]
    del rules["urgent"]
    assert book(rules).match(rec("text", "hi"), T).name == "first_contains"  # type: ignore[union-attr]
    rules["first_contains"] = {**rules["first_contains"], "enabled": False}
    assert book(rules).match(rec("text", "hi"), T).name == "second_contains"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("local", "hours", "active"),
    [
        ("2026-05-01 09:00", "09:00-18:00", True),
        ("2026-05-01 17:59", "09:00-18:00", True),
        ("2026-05-01 18:00", "09:00-18:00", False),
        ("2026-05-01 08:59", "09:00-18:00", False),
        ("2026-05-01 23:30", "22:00-06:00", True),  # wraps midnight
        ("2026-05-02 05:59", "22:00-06:00", True),
        ("2026-05-01 12:00", "22:00-06:00", False),
        ("2026-05-01 23:59", "00:00-24:00", True),
    ],
)
def test_active_hours_in_the_configured_zone(local: str, hours: str, active: bool) -> None:
    rules = {
        "office": {"match": "contains", "keywords": ["hi"], "template": "help.txt.j2", "active_hours": hours},
        "fallback": {"match": "default", "template": "default.txt.j2", "priority": -1},
    }
    moment = datetime.fromisoformat(local).replace(tzinfo=SHANGHAI)
    with time_machine.travel(moment, tick=False):  # the rulebook reads the clock itself
        answer = book(rules).answer(rec("text", "hi"), {"openid": "o1"})
    assert answer.rule == ("office" if active else "fallback")


def test_replies_are_rendered_with_the_followers_context() -> None:
    answer = book().answer(rec("subscribe", scene="kol_xiaohong"), {"openid": "o1"}, T)
    assert answer.reply is not None and "through kol_xiaohong" in answer.reply.text
    news = book().answer(rec("click", key="MENU_NEWS"), {"openid": "o1", "channel": "store_bj_01"}, T)
    assert news.reply is not None
    assert [(a.title, a.url) for a in news.reply.articles] == [
        ("News for o1", "https://example.com/n?c=store_bj_01")
    ]


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("Hello {{ nobody_knows_me }}", "undefined"),
        ("Hello {% if %}", "syntax error"),
        ("{{ openid.__class__.__mro__ }}", "sandbox"),
        ("{{ tags[5] }}", "no element 5"),
    ],
)
def test_a_failing_template_gets_the_default_reply_and_a_log_line(
    tmp_path: Path, source: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "broken.txt.j2").write_text(source, encoding="utf-8")
    (tmp_path / "default.txt.j2").write_text("Sorry {{ openid }}, we will answer soon.", encoding="utf-8")
    rules = {"greeting": {"match": "exact", "keywords": ["hi"], "template": "broken.txt.j2"}}
    with caplog.at_level(logging.ERROR, logger="campaigns.rules"):
        answer = book(rules, Renderer(tmp_path)).answer(rec("text", "hi"), {"openid": "o1", "tags": []}, T)
    assert answer.fell_back and answer.reply is not None
    assert answer.reply.text == "Sorry o1, we will answer soon."
    assert "'greeting'" in caplog.text and "'broken.txt.j2'" in caplog.text
    with pytest.raises(TemplateError, match=why):
        Renderer(tmp_path).render("broken.txt.j2", {"openid": "o1", "tags": []})


def test_a_missing_default_template_still_answers(tmp_path: Path) -> None:
    rules = {"greeting": {"match": "exact", "keywords": ["hi"], "template": "nowhere.txt.j2"}}
    answer = book(rules, Renderer(tmp_path)).answer(rec("text", "hi"), {"openid": "o1"}, T)
    assert answer.reply is not None and answer.reply.text == FALLBACK_TEXT


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('match = "regex"\npattern = "(unclosed"\ntemplate = "a"', "bot.rules.bad: pattern '(unclosed'"),
        ('match = "exact"\ntemplate = "a"', "bot.rules.bad: a 'exact' rule needs keywords"),
        ('match = "click"\ntemplate = "a"', "bot.rules.bad: a 'click' rule needs the menu key"),
        ('match = "default"', "bot.rules.bad: give either template"),
        ('match = "default"\ntemplate = "a"\nactive_hours = "9-18"', "bot.rules.bad: active_hours '9-18'"),
        ('match = "default"\ntemplate = "a"\nkeyword = ["x"]', "bot.rules.bad.keyword: unknown key"),
        ('match = "sometimes"\ntemplate = "a"', "bot.rules.bad.match"),
    ],
)
def test_bad_rules_are_config_errors_naming_the_rule(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[bot.rules.bad]\n{table}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings(path, environ={})
