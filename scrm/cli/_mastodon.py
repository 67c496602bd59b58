"""``scrm sync mastodon``: the brand's Mastodon followers and the interactions between people."""

from __future__ import annotations

import click

from scrm.cli._common import Context, console, echo_json, handle_errors, pass_ctx
from scrm.cli._sync import sync_group


@sync_group.command("mastodon")
@click.option(
    "--account", "account_name", help="Config name of the account (default: the only Mastodon one)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_ctx
@handle_errors
def sync_mastodon_cmd(obj: Context, account_name: str | None, as_json: bool) -> None:
    """Sync a Mastodon account's followers and the replies, mentions and boosts on its instance.

    \b
    Followers become customers keyed by their handle (user@domain); an email
    or phone in a profile field is a merging key only when Mastodon marks the
    field verified, otherwise it only feeds `scrm merges suggest`. Followers
    gone from the list get their follow closed (history kept). The public
    local timeline after the last status read is stored as reply, mention
    and boost interactions (author -> the other person), which the scoring
    graph reads. A sync stopped at any point resumes where it stopped; a sync
    with nothing new adds nothing.
    """
    from connectors.mastodon_sync import sync_mastodon

    obj.store.check_schema()
    report = sync_mastodon(obj.store, obj.settings, account_name)
    if as_json:
        echo_json(report.as_dict())
        return
    console.print(
        f"Account {report.account}: {report.followers:,} followers, {report.statuses:,} new statuses in "
        f"{report.seconds:.1f} s{' (resumed)' if report.resumed else ''}.",
        highlight=False,
    )
    console.print(
        f"  customers created {report.customers_created:,}, follows opened {report.follows_opened:,}, "
        f"closed {report.follows_closed:,}, interactions {report.interactions_added:,}, "
        f"merged {len(report.merges):,}",
        highlight=False,
    )
