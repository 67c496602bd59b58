"""The ``[bot]`` settings: the callback server's limits and the reply rules, validated at load.

Rules are named tables, ``[bot.rules.NAME]``; the name is how logs and errors refer to a rule. A rule
matches a text message (``exact``, ``contains``, ``regex``), an event (``subscribe``, optionally through
a channel QR code ``scene``; ``scan`` of a ``scene``; a menu ``click`` on ``key``) or is the ``default``
(text nothing else matched); with no rule tables at all, :data:`DEFAULT_RULES` apply. Rules are
tried from the highest ``priority`` down (ties: file order); the first whose active hours include
the current local time wins. A bad regular expression, a rule whose
fields do not fit its kind, or an unknown key is a :class:`~scrm.errors.ConfigError` naming the rule.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DEFAULT_RULES", "Article", "BotSettings", "RuleSettings", "parse_hours"]

MatchKind = Literal["exact", "contains", "regex", "subscribe", "scan", "click", "default"]
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def parse_hours(value: str) -> tuple[time, time] | None:
    """``"09:00-18:00"`` as (start, end); ``""`` (always) as None. The range may wrap midnight.

    >>> parse_hours("22:30-06:00")
    (datetime.time(22, 30), datetime.time(6, 0))
    >>> parse_hours("") is None
    True
    """
    if not value:
        return None
    found = _HOURS.match(value)
    if found is None:
        raise ValueError(f"active_hours {value!r}: write HH:MM-HH:MM, e.g. 09:00-18:00")
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    end = time(23, 59, 59, 999999) if (h2, m2) == (24, 0) else time(h2, m2)
    return time(h1, m1), end


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Article(_Strict):
    """One article of a news reply; every field is a template string rendered with the follower's context."""

    title: str = Field(min_length=1)
    description: str = ""
    url: str = ""
    image: str = ""


class RuleSettings(_Strict):
    """One reply rule (see the module docstring)."""

    match: MatchKind
    keywords: list[str] = []
    pattern: str = ""
    scene: str = ""  # subscribe / scan: the channel QR code's scene ("ref_*" style wildcards allowed)
    key: str = ""  # click: the menu key
    case_sensitive: bool = False
    template: str = ""  # a file in the templates folder, e.g. "welcome.txt.j2"
    articles: list[Article] = []  # a news reply instead of a text one
    priority: int = 0
    active_hours: str = ""
    timeout_seconds: float = Field(4.0, gt=0, le=4.5)
    enabled: bool = True

    @model_validator(mode="after")
    def _fits_its_kind(self) -> RuleSettings:
        parse_hours(self.active_hours)
        if self.match in ("exact", "contains") and not self.keywords:
            raise ValueError(f"a {self.match!r} rule needs keywords = [...]")
        if self.match == "regex":
            if not self.pattern:
                raise ValueError("a 'regex' rule needs a pattern")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern {self.pattern!r} is not a valid regex: {exc}") from None
        if self.match == "click" and not self.key:
            raise ValueError("a 'click' rule needs the menu key (key = ...)")
        if bool(self.template) == bool(self.articles):
            raise ValueError('give either template = "NAME.txt.j2" or [[...articles]], not both or neither')
        if self.articles and len(self.articles) > 8:
            raise ValueError("a news reply holds at most 8 articles")
        return self


#: the rules that apply when config.toml has no [bot.rules.*] table
DEFAULT_RULES: dict[str, RuleSettings] = {
    "welcome": RuleSettings(match="subscribe", template="welcome.txt.j2"),
    "help": RuleSettings(match="exact", keywords=["help", "?", "帮助"], template="help.txt.j2", priority=10),
    "fallback": RuleSettings(match="default", template="default.txt.j2", priority=-100),
}


class BotSettings(_Strict):
    """The bot: limits of the callback endpoint, the templates folder and the reply rules."""

    max_body_bytes: int = Field(65_536, ge=1_024, le=10_485_760)
    templates: str = ""  # folder of message templates; "" = templates/messages of scrm itself
    default_reply: str = "default.txt.j2"  # template answered when a rule's template fails
    group_commit_ms: float = Field(2.0, ge=0, le=50)
    rules: dict[str, RuleSettings] = Field(default_factory=lambda: dict(DEFAULT_RULES))
