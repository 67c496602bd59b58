"""The bot's reply rules: which rule answers an inbound message or event, and with what.

Rules come from ``[bot.rules.NAME]`` in ``config.toml`` (validated by :mod:`scrm.bot_settings`). For a
record, the enabled rules are tried from the highest ``priority`` down (ties in file order); the first
that matches it and whose ``active_hours`` (local time in ``[scrm] timezone``) include now wins:

- ``exact`` / ``contains``: a text equal to / containing one of ``keywords`` (case-insensitive unless
  ``case_sensitive``); ``regex``: ``pattern`` found anywhere in the text;
- ``subscribe``: a follow, through a channel QR code whose scene matches ``scene`` when one is given
  (shell-style wildcards: ``ref_*`` is any follower's personal code); ``scan``: a scan of a code
  (``scene`` as above); ``click``: a menu click on ``key``;
- ``default``: any message (not an event) nothing else matched.

The winner's reply is rendered from its template (or its news articles) with the follower's context.
A template that fails is logged with the rule and template name, and the follower gets the default
reply (``[bot] default_reply``) instead, never a broken message.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from campaigns.render import Renderer
from connectors.wechat_callback import Article, Reply
from scrm.bot_settings import BotSettings, RuleSettings, parse_hours
from scrm.errors import TemplateError
from scrm.inbound import InboundRecord

__all__ = ["Answer", "Rule", "Rulebook"]

log = logging.getLogger(__name__)

_EVENTS = {"subscribe", "scan", "click"}
_MESSAGES = {"text", "image", "voice", "video", "shortvideo", "location", "link"}
#: what a reply may read without the store: the message itself
_OWN = frozenset({"kind", "content", "key", "openid"})
#: answered when even the default template cannot be rendered
FALLBACK_TEXT = "Thank you for your message."


@dataclass(frozen=True)
class Rule:
    """A validated rule, ready to match."""

    name: str
    settings: RuleSettings
    hours: tuple[time, time] | None
    regex: re.Pattern[str] | None

    @classmethod
    def from_settings(cls, name: str, settings: RuleSettings) -> Rule:
        flags = 0 if settings.case_sensitive else re.IGNORECASE
        regex = re.compile(settings.pattern, flags) if settings.match == "regex" else None
        return cls(name, settings, parse_hours(settings.active_hours), regex)

    def active_at(self, local: time) -> bool:
        """Whether ``local`` (a wall-clock time) is within the rule's active hours (wrapping midnight)."""
        if self.hours is None:
            return True
        start, end = self.hours
        return start <= local < end if start <= end else (local >= start or local < end)

    def matches(self, record: InboundRecord) -> bool:
        s = self.settings
        if s.match in ("exact", "contains", "regex"):
            if record.kind != "text":
                return False
            text = record.content.strip()
            if self.regex is not None:
                return self.regex.search(text) is not None
            fold = (lambda v: v) if s.case_sensitive else str.casefold
            words = [fold(k) for k in s.keywords]
            return fold(text) in words if s.match == "exact" else any(w in fold(text) for w in words)
        if s.match in ("subscribe", "scan"):
            if record.kind != s.match:
                return False
            return not s.scene or (bool(record.scene) and fnmatch.fnmatchcase(record.scene, s.scene))
        if s.match == "click":
            return record.kind == "click" and record.key == s.key
        return s.match == "default" and record.kind in _MESSAGES


@dataclass(frozen=True)
class Answer:
    """The rule that answered (``""``: none) and its reply (None: nothing to say, answer ``success``);
    ``timeout`` is the rule's budget in seconds; ``fell_back`` is true when its template failed."""

    rule: str
    reply: Reply | None
    timeout: float = 4.0
    fell_back: bool = False


class Rulebook:
    """The ordered rules of ``[bot]`` and the renderer of their replies.

    Examples
    --------
    >>> from datetime import UTC
    >>> bot = BotSettings.model_validate({"rules": {
    ...     "hi": {"match": "exact", "keywords": ["hi", "hello"], "template": "help.txt.j2"},
    ...     "fallback": {"match": "default", "template": "default.txt.j2", "priority": -1}}})
    >>> book = Rulebook(bot, ZoneInfo("Asia/Shanghai"))
    >>> rec = InboundRecord("wechat", "wx1", "o1", "text", datetime(2026, 5, 1, tzinfo=UTC), 1, "Hello")
    >>> book.match(rec).name
    'hi'
    """

    def __init__(self, bot: BotSettings, tz: ZoneInfo, renderer: Renderer | None = None) -> None:
        self.tz = tz
        self.renderer = renderer or Renderer(bot.templates or None)
        self.default_template = bot.default_reply
        named = [Rule.from_settings(n, s) for n, s in bot.rules.items() if s.enabled]
        order = {rule.name: i for i, rule in enumerate(named)}
        self.rules = sorted(named, key=lambda r: (-r.settings.priority, order[r.name]))

    def match(self, record: InboundRecord, now: datetime | None = None) -> Rule | None:
        """The first rule (by priority) that matches ``record`` and is active now."""
        local = (now or datetime.now(self.tz)).astimezone(self.tz).time()
        for rule in self.rules:
            if rule.matches(record) and rule.active_at(local):
                return rule
        return None

    def reads(self, rule: Rule) -> frozenset[str] | None:
        """The names the rule's reply reads (context names and template globals); None: unknown."""
        s = rule.settings
        if s.template:
            return self.renderer.names(s.template)
        parts = [
            self.renderer.string_names(v)
            for a in s.articles
            for v in (a.title, a.description, a.url, a.image)
        ]
        if any(p is None for p in parts):
            return None
        return frozenset().union(*(p for p in parts if p is not None))

    def needs_follower(self, rule: Rule) -> bool:
        """Whether the rule's reply reads the follower's stored context (tags, scores, channel ...)."""
        names = self.reads(rule)
        return names is None or bool(names - _OWN - set(self.renderer.env.globals))

    def is_instant(self, rule: Rule) -> bool:
        """Whether the reply reads only the message itself (no stored context, no global function), so
        rendering it cannot wait on anything: callers may render it without a worker thread."""
        names = self.reads(rule)
        return names is not None and names <= _OWN

    def answer(
        self,
        record: InboundRecord,
        context: Mapping[str, Any],
        now: datetime | None = None,
        *,
        rule: Rule | None = None,
    ) -> Answer:
        """Match (unless ``rule`` is given) and render; a template error falls back to the default
        reply (logged, never raised)."""
        rule = rule or self.match(record, now)
        if rule is None:
            return Answer("", None)
        full = {**context, "kind": record.kind, "content": record.content, "key": record.key}
        if record.kind in ("subscribe", "scan") and record.scene:
            full["channel"] = record.scene
        full.setdefault("channel", "")
        try:
            return Answer(rule.name, self._render(rule, full), rule.settings.timeout_seconds)
        except TemplateError as exc:
            log.error(
                "rule %r, template %r: %s; answering the default reply", rule.name, self._name(rule), exc
            )
        return Answer(rule.name, self.default_reply(full), rule.settings.timeout_seconds, fell_back=True)

    def default_reply(self, context: Mapping[str, Any]) -> Reply:
        """The default reply rendered with ``context``; a fixed text when even that template fails."""
        try:
            return Reply(text=self.renderer.render(self.default_template, context))
        except TemplateError as exc:
            log.error("default template %r: %s; answering a fixed text", self.default_template, exc)
            return Reply(text=FALLBACK_TEXT)

    @staticmethod
    def _name(rule: Rule) -> str:
        return rule.settings.template or "articles"

    def _render(self, rule: Rule, context: Mapping[str, Any]) -> Reply:
        s = rule.settings
        if s.template:
            text = self.renderer.render(s.template, context)
            if not text:
                raise TemplateError(f"template {s.template!r} rendered an empty message")
            return Reply(text=text)
        articles = tuple(
            Article(
                title=self.renderer.render_string(a.title, context, name=f"{rule.name}.title"),
                description=self.renderer.render_string(
                    a.description, context, name=f"{rule.name}.description"
                ),
                url=self.renderer.render_string(a.url, context, name=f"{rule.name}.url"),
                image=self.renderer.render_string(a.image, context, name=f"{rule.name}.image"),
            )
            for a in s.articles
        )
        return Reply(articles=articles)
