"""``scrm sync``: pull followers and interactions from the platforms into the store."""

from __future__ import annotations

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from scrm.cli._common import Context, cli, console, echo_json, handle_errors, pass_ctx


@cli.group("sync")
def sync_group() -> None:
    """Pull followers, profiles, tags and interactions from the platforms."""


@sync_group.command("wechat")
@click.option("--account", "account_name", help="Config name of the account (default: the only WeChat one).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_ctx
@handle_errors
def sync_wechat_cmd(obj: Context, account_name: str | None, as_json: bool) -> None:
    """Sync a WeChat Official Account's followers into the store.

    \b
    Reads every follower id (user/get), their profiles 100 at a time with
    [sync] concurrency requests in flight, and stores: one customer per person
    (openid of this account; a unionid merges them with what other accounts
    and order imports know), a follow period with subscribe scene and channel
    (qr_scene_str), referrals (a channel ref_<openid> is another follower's
    code), the account's tags, and reads through tracked share links
    (share_reads_url) as sharer -> reader interactions. Followers gone from
    the list get their follow period closed (history kept); one who comes back
    gets a new one.

    A sync stopped at any point (Ctrl-C, a crash, kill -9) resumes where it
    stopped the next time; a sync with nothing new changes nothing.
    """
    from connectors.follower_sync import SyncReport, sync_wechat
    from scrm.errors import ScrmError

    report = SyncReport(account=account_name or "")
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=as_json or not console.is_terminal,
    ) as bar:
        task = bar.add_task("Syncing followers", total=None)
        try:
            sync_wechat(
                obj.store,
                obj.settings,
                account_name,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                report=report,
            )
        except ScrmError:
            if as_json:  # what was done before it stopped, with the error; the message goes to stderr
                echo_json(report.as_dict())
            raise
    if as_json:
        echo_json(report.as_dict())
        return
    rate = report.followers / report.seconds if report.seconds else 0.0
    console.print(
        f"Account {report.account}: {report.followers:,} followers in {report.seconds:.1f} s "
        f"({rate:,.0f}/s){' (resumed)' if report.resumed else ''}.",
        highlight=False,
    )
    console.print(
        f"  new {report.new:,}, updated {report.updated:,}, unsubscribed {report.unsubscribed:,}, "
        f"resubscribed {report.resubscribed:,}, merged {len(report.merges):,}, "
        f"referrals {report.referrals:,}",
        highlight=False,
    )
    console.print(
        f"  tags {report.tags:,} (on followers: +{report.tags_added:,} -{report.tags_removed:,}), "
        f"share reads {report.share_reads:,}, errors {len(report.errors):,}",
        highlight=False,
    )
    for merge in report.merges[:10]:
        console.print(
            f"  merged customer {merge.merged_id} into {merge.kept_id}: {merge.reason}", highlight=False
        )
    for error in report.errors[:20]:
        console.print(f"  error: {error}", highlight=False, markup=False)


@sync_group.command("wecom")
@click.option("--account", "account_name", help="Config name of the account (default: the only WeCom one).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_ctx
@handle_errors
def sync_wecom_cmd(obj: Context, account_name: str | None, as_json: bool) -> None:
    """Sync a WeCom corp's external contacts and customer groups into the store.

    \b
    Reads every permitted staff member's external contacts (batch/get_by_user)
    and stores one customer per person (external_userid of this corp; a
    unionid merges them with the same person's Official Account follower) with
    a staff_contact row per staff member who has them (add_way, channel
    state). Reads every customer group (groupchat/list, groupchat/get) and
    stores it with its customer members: joins with scene and inviter
    (a customer inviter becomes an invited_to_group relation), leaves closing
    the stay (history kept) as group_leave interactions. Pulls contact
    deletions (staff_deleted_customer, customer_deleted_staff) from the
    account's events_url.

    A sync stopped at any point (Ctrl-C, a crash, kill -9) resumes where it
    stopped the next time; a sync with nothing new changes nothing.
    """
    from connectors.wecom_sync import sync_wecom

    with Progress(
        "[progress.description]{task.description}",
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=as_json or not console.is_terminal,
    ) as bar:
        task = bar.add_task("Syncing groups", total=None)
        report = sync_wecom(
            obj.store, obj.settings, account_name, progress=lambda done, _: bar.update(task, completed=done)
        )
    if as_json:
        echo_json(report.as_dict())
        return
    console.print(
        f"Account {report.account}: {report.contacts:,} contacts, {report.groups:,} groups in "
        f"{report.seconds:.1f} s{' (resumed)' if report.resumed else ''}.",
        highlight=False,
    )
    console.print(
        f"  new staff contacts {report.staff_contacts:,}, customers created {report.customers_created:,}, "
        f"merged {len(report.merges):,}",
        highlight=False,
    )
    console.print(
        f"  groups new {report.groups_new:,}, joined {report.joined:,}, left {report.left:,}, "
        f"invitations {report.invitations:,}, contact events {report.events:,}",
        highlight=False,
    )
    for merge in report.merges[:10]:
        console.print(
            f"  merged customer {merge.merged_id} into {merge.kept_id}: {merge.reason}", highlight=False
        )
