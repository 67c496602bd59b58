"""Followers' actions pushed through the real bot, for the demo and for trying rules end to end.

:func:`replay` serves the app on a free loopback port (uvicorn in a thread), pushes each action as
WeChat would (signed, AES-encrypted in safe mode, via the simulator's push) and returns what the
follower would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wechatpy import parse_message

from connectors.wechat_sim import push_actions
from connectors.wechat_sim.population import Action
from connectors.wechat_sim.push import Mode
from connectors.wechat_sim.serving import BackgroundServer
from scrm.config import Settings
from scrm.errors import ConfigError
from scrm.store import Store
from scrm.web.app import create_app

__all__ = ["Exchange", "replay"]


@dataclass(frozen=True)
class Exchange:
    """One action and the bot's answer as the follower sees it (``""``: nothing, ``success``)."""

    action: Action
    status: int | None
    reply: str


def _readable(xml: str) -> str:
    if not xml.startswith("<xml>"):
        return ""
    message = parse_message(xml)
    if getattr(message, "type", "") == "text":
        return str(message.content)
    return "(news) " + " | ".join(a["title"] for a in getattr(message, "articles", []) or [])


def replay(
    settings: Settings, store: Store, account: str, actions: Sequence[Action], *, mode: Mode = "safe"
) -> list[Exchange]:
    """Push ``actions`` to the bot of ``account`` (config name) and return each answer."""
    conf = settings.accounts.get(account)
    if conf is None or conf.platform != "wechat" or conf.token is None:
        raise ConfigError(f"account {account!r} needs a token (and encoding_aes_key) for the bot")
    key = conf.encoding_aes_key.get_secret_value() if conf.encoding_aes_key else None
    app = create_app(settings, store=store)
    try:
        with BackgroundServer(app) as server:
            results = push_actions(
                f"{server.base_url}/wechat/{account}",
                actions,
                token=conf.token.get_secret_value(),
                appid=conf.appid,
                encoding_aes_key=key,
                mode=mode if key else "plain",
            )
    finally:
        app.state.bot.close()
    return [Exchange(r.action, r.status, _readable(r.reply)) for r in results]
