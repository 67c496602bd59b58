"""The bot's reply rules as a list, and which rule answers a message (``scrm bot rules``/``try`` and
the API's ``/rules``): nothing is stored or sent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from campaigns.render import Renderer
from campaigns.rules import Rulebook
from scrm.config import Settings
from scrm.errors import ConfigError
from scrm.inbound import FollowerContext, InboundRecord, follower_context
from scrm.store import Store

__all__ = ["rule_rows", "rulebook", "try_rules"]


def rulebook(settings: Settings) -> Rulebook:
    """The bot's rules of ``settings`` with their templates folder."""
    folder = (settings.base_dir / settings.bot.templates) if settings.bot.templates else None
    return Rulebook(settings.bot, settings.scrm.tz, Renderer(folder))


def rule_rows(settings: Settings) -> list[dict[str, Any]]:
    """The enabled rules in the order they are tried: name, match kind, what it matches on, reply,
    priority, active hours and timeout."""
    rows: list[dict[str, Any]] = []
    for rule in rulebook(settings).rules:
        s = rule.settings
        what = {
            "exact": ", ".join(s.keywords),
            "contains": ", ".join(s.keywords),
            "regex": s.pattern,
            "subscribe": s.scene or "(any)",
            "scan": s.scene or "(any)",
            "click": s.key,
            "default": "",
        }[s.match]
        rows.append(
            {
                "name": rule.name,
                "match": s.match,
                "on": what,
                "reply": s.template or f"{len(s.articles)} article(s)",
                "priority": s.priority,
                "active_hours": s.active_hours or "always",
                "timeout_seconds": s.timeout_seconds,
            }
        )
    return rows


def try_rules(
    settings: Settings,
    store: Store | None,
    *,
    text: str = "",
    event: str | None = None,
    scene: str = "",
    key: str = "",
    openid: str = "",
    account: str | None = None,
) -> dict[str, Any]:
    """Which rule answers ``text`` (or ``event``) now, and the reply it renders.

    With an ``openid`` (and a store) the templates see that follower's stored context. ``account`` is
    the config name of a WeChat account (default: the first). Raises :class:`ConfigError` for an
    unknown account.
    """
    wechat = {n: a for n, a in settings.accounts.items() if a.platform == "wechat"}
    if account is not None and account not in wechat:
        raise ConfigError(f"no WeChat account {account!r} in the settings (known: {', '.join(wechat)})")
    chosen = wechat[account] if account is not None else next(iter(wechat.values()), None)
    appid = chosen.appid if chosen is not None else ""
    record = InboundRecord(
        "wechat",
        appid,
        openid or "o_try",
        event or "text",
        datetime.now(UTC),
        0 if event else 1,
        text,
        scene,
        key,
    )
    known = store is not None and openid and appid
    context = (
        follower_context(store, appid, openid)
        if store is not None and known
        else FollowerContext(record.openid)
    )
    answer = rulebook(settings).answer(record, context.as_dict())
    reply = answer.reply
    return {
        "rule": answer.rule or None,
        "fell_back": answer.fell_back,
        "text": reply.text if reply else "",
        "articles": [vars(a) for a in reply.articles] if reply else [],
    }
