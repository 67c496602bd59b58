"""Languages of the dashboard: English and Chinese, the translation catalogue and Babel's formats.

The Chinese catalogue is ``templates/web/locale/zh_CN/LC_MESSAGES/messages.po``, compiled in memory
when the app starts (no ``.mo`` file to keep in step). Templates mark text with ``{% trans %}`` or
``_()`` (``jinja2.ext.i18n``). Numbers, money, percentages and times are formatted by Babel for the
page's locale, times in ``[scrm] timezone``.

The language of a request: ``?lang=zh`` or ``?lang=en`` (remembered in the ``scrm_lang`` cookie), else
that cookie, else the browser's ``Accept-Language``, else English.
"""

from __future__ import annotations

import functools
import io
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import NumberPattern, parse_pattern
from babel.support import NullTranslations, Translations

__all__ = ["LANGUAGES", "LANG_COOKIE", "Formats", "choose_language", "load_translations"]

LANGUAGES = {"en": "en", "zh": "zh_CN"}  # the ?lang= value -> Babel locale
LANG_COOKIE = "scrm_lang"


def load_translations(locale_dir: Path) -> dict[str, NullTranslations]:
    """The translations per language: English is the source text, Chinese comes from its catalogue."""
    out: dict[str, NullTranslations] = {"en": NullTranslations()}
    for lang, locale in LANGUAGES.items():
        po = locale_dir / locale / "LC_MESSAGES" / "messages.po"
        if lang == "en" or not po.is_file():
            continue
        with po.open("rb") as source:
            catalog = read_po(source, locale=locale)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        out[lang] = Translations(compiled)
    return out


def _accepted(header: str) -> list[str]:
    """The languages of an Accept-Language header, most wanted first."""
    ranked = []
    for i, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:  # q=0: not wanted
            ranked.append((-quality, i, tag.strip().lower()))
    return [tag for _, _, tag in sorted(ranked)]


def choose_language(query: str | None, cookie: str | None, accept_language: str) -> str:
    """``en`` or ``zh`` for a request (see the module's docstring).

    >>> choose_language(None, None, "zh-CN,zh;q=0.9,en;q=0.8"), choose_language("en", "zh", "zh-CN")
    ('zh', 'en')
    >>> choose_language(None, None, "fr, en;q=0.5"), choose_language(None, None, "")
    ('en', 'en')
    """
    for chosen in (query, cookie):
        if chosen in LANGUAGES:
            return chosen
    for tag in _accepted(accept_language):
        primary = tag.split("-")[0]
        if primary in LANGUAGES:
            return primary
    return "en"


@functools.cache
def _pattern(digits: int, suffix: str) -> NumberPattern:
    """A parsed number pattern (parsing one costs more than applying it: a page applies hundreds)."""
    return parse_pattern("#,##0" + ("." + "0" * digits if digits else "") + suffix)


class Formats:
    """Babel's number, money, percent and time formats for one language (Jinja filters)."""

    def __init__(self, lang: str, zone: tzinfo) -> None:
        self.locale = Locale.parse(LANGUAGES[lang])
        self.zone = zone

    def number(self, value: float | int | None, digits: int = 0) -> str:
        if value is None:
            return "–"
        return str(_pattern(digits, "").apply(value, self.locale))

    def percent(self, value: float | None, digits: int = 1) -> str:
        if value is None:
            return "–"
        return str(_pattern(digits, "%").apply(value, self.locale))

    def money(self, minor: int | None, currency: str = "CNY") -> str:
        if minor is None:
            return "–"
        return str(
            self.locale.currency_formats["standard"].apply(
                minor / 100, self.locale, currency=currency or "CNY"
            )
        )

    def when(self, value: datetime | str | None, form: str = "medium") -> str:
        if value is None or value == "":
            return "–"
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return str(format_datetime(moment, format=form, tzinfo=self.zone, locale=self.locale))

    def day(self, value: datetime | str | None) -> str:
        if value is None or value == "":
            return "–"
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return str(format_datetime(moment, format="yyyy-MM-dd", tzinfo=self.zone, locale=self.locale))

    def filters(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "percent": self.percent,
            "money": self.money,
            "when": self.when,
            "day": self.day,
        }
