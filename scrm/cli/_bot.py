"""``scrm bot rules`` and ``scrm bot try``: the reply rules of config.toml, and what they answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from campaigns.render import Renderer
from campaigns.rules import Rulebook
from scrm.cli._common import Context, cli, console, echo_json, handle_errors, pass_ctx
from scrm.inbound import FollowerContext, InboundRecord, follower_context


def _rulebook(ctx: Context) -> Rulebook:
    settings = ctx.settings
    folder = (settings.base_dir / settings.bot.templates) if settings.bot.templates else None
    return Rulebook(settings.bot, settings.scrm.tz, Renderer(folder))


@cli.group("bot")
def bot() -> None:
    """The bot's reply rules ([bot.rules.NAME] in config.toml); `scrm serve` runs the bot."""


@bot.command("rules")
@click.option("--json", "as_json", is_flag=True, help="Print the rules as JSON.")
@pass_ctx
@handle_errors
def rules(ctx: Context, as_json: bool) -> None:
    """List the enabled reply rules in the order they are tried (highest priority first)."""
    rows: list[dict[str, Any]] = []
    for rule in _rulebook(ctx).rules:
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
        reply = s.template or f"{len(s.articles)} article(s)"
        rows.append(
            {
                "name": rule.name,
                "match": s.match,
                "on": what,
                "reply": reply,
                "priority": s.priority,
                "active_hours": s.active_hours or "always",
                "timeout_seconds": s.timeout_seconds,
            }
        )
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        console.print(
            f"{r['name']:<16} {r['match']:<9} {r['on']:<28} -> {r['reply']:<18} "
            f"priority {r['priority']:>4}  {r['active_hours']}",
            highlight=False,
            markup=False,
        )


@bot.command("try")
@click.argument("text", required=False, default="")
@click.option(
    "--event", type=click.Choice(["subscribe", "scan", "click", "unsubscribe"]), help="An event, not a text."
)
@click.option("--scene", default="", help="The QR code scene of a subscribe or scan (e.g. store_bj_01).")
@click.option("--key", default="", help="The menu key of a click.")
@click.option("--openid", default="", help="Render with this follower's stored context (tags, scores).")
@click.option("--account", default=None, help="Config name of the account (when there are several).")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@pass_ctx
@handle_errors
def try_message(
    ctx: Context,
    text: str,
    event: str | None,
    scene: str,
    key: str,
    openid: str,
    account: str | None,
    as_json: bool,
) -> None:
    """Show which rule answers TEXT (or an --event) now and the reply it renders; nothing is stored."""
    settings = ctx.settings
    wechat = {n: a for n, a in settings.accounts.items() if a.platform == "wechat"}
    appid = (
        wechat[account].appid if account in wechat else next(iter(wechat.values())).appid if wechat else ""
    )
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
    context = (
        follower_context(ctx.store, appid, openid) if openid and appid else FollowerContext(record.openid)
    )
    answer = _rulebook(ctx).answer(record, context.as_dict())
    reply = answer.reply
    result = {
        "rule": answer.rule or None,
        "fell_back": answer.fell_back,
        "text": reply.text if reply else "",
        "articles": [vars(a) for a in reply.articles] if reply else [],
    }
    if as_json:
        echo_json(result)
        return
    console.print(f"rule: {answer.rule or '(none: answered success)'}", highlight=False, markup=False)
    if reply is not None:
        console.print(reply.text or "\n".join(f"[{a.title}] {a.url}" for a in reply.articles), markup=False)
