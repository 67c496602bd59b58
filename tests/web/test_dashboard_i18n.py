"""The Chinese catalogue translates every string of the dashboard, keeping its placeholders."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from scrm.web.dashboard.i18n import choose_language

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "templates/web/locale/zh_CN/LC_MESSAGES/messages.po"
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _extracted() -> set[str]:
    """Every msgid marked in the templates ({% trans %}, _()) and in the dashboard's Python (gettext)."""
    found = set()
    sources = [
        (ROOT / "templates/web", [("**.html", "jinja2")], {"**.html": {"extensions": "jinja2.ext.i18n"}}),
        (ROOT / "scrm/web/dashboard", [("**.py", "python")], {}),
    ]
    for folder, method_map, options in sources:
        for _file, _line, message, _comments, _context in extract_from_dir(folder, method_map, options):
            found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_dashboard_string_has_a_chinese_translation() -> None:
    with PO.open("rb") as source:
        catalog = read_po(source, locale="zh_CN")
    translated = {m.id: m.string for m in catalog if m.id and m.string and not m.fuzzy}
    wanted = _extracted()
    assert len(wanted) > 150
    missing = sorted(wanted - set(translated))
    assert not missing, f"untranslated (see templates/web/locale/README.md): {missing}"
    for msgid in wanted:
        assert sorted(_PLACEHOLDER.findall(msgid)) == sorted(_PLACEHOLDER.findall(translated[msgid])), msgid
        assert msgid.count("%%") == translated[msgid].count("%%"), msgid
        assert re.search(r"[\u4e00-\u9fff]", translated[msgid]), f"not Chinese: {msgid!r}"


def test_the_language_comes_from_the_choice_the_cookie_or_the_browser() -> None:
    assert choose_language("zh", "en", "en-US") == "zh"
    assert choose_language(None, "zh", "en-US") == "zh"
    assert choose_language("xx", None, "en-GB,zh-CN;q=0.8") == "en"
    assert choose_language(None, None, "de-DE,zh-TW;q=0.7,en;q=0.3") == "zh"
    assert choose_language(None, None, "zh;q=0.1, en;q=0.9") == "en"
    assert choose_language(None, None, "zh;q=bad, fr") == "en"
