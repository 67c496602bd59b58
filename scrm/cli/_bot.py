"""``scrm bot rules`` and ``scrm bot try``: the reply rules of config.toml, and what they answer."""

from __future__ import annotations

import click

from campaigns.bot_preview import rule_rows, try_rules
from scrm.cli._common import Context, cli, console, echo_json, handle_errors, pass_ctx


@cli.group("bot")
def bot() -> None:
    """The bot's reply rules ([bot.rules.NAME] in config.toml); `scrm serve` runs the bot."""


@bot.command("rules")
@click.option("--json", "as_json", is_flag=True, help="Print the rules as JSON.")
@pass_ctx
@handle_errors
def rules(ctx: Context, as_json: bool) -> None:
    """List the enabled reply rules in the order they are tried (highest priority first)."""
    rows = rule_rows(ctx.settings)
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
    result = try_rules(
        ctx.settings,
        ctx.store if openid else None,
        text=text,
        event=event,
        scene=scene,
        key=key,
        openid=openid,
        account=account,
    )
    reply_text = result["text"]
    articles = result["articles"]
    if as_json:
        echo_json(result)
        return
    console.print(f"rule: {result['rule'] or '(none: answered success)'}", highlight=False, markup=False)
    if reply_text or articles:
        console.print(reply_text or "\n".join(f"[{a['title']}] {a['url']}" for a in articles), markup=False)
