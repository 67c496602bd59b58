"""The campaign commands: segment list / preview, campaign list / run / report / pause / resume."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from scrm.cli._common import Context, cli, console, echo_json, handle_errors, pass_ctx


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _uplift(value: tuple[float, float, float] | None) -> str:
    if value is None:
        return ""
    d, low, high = value
    return f"{100 * d:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


@cli.group("segment")
def segment() -> None:
    """Audiences: TOML files of the campaigns folder, and segments saved from the web."""


@segment.command("preview")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--sample", default=10, show_default=True, help="How many customers to show.")
@click.option("--json", "as_json", is_flag=True, help="Print size and sample as JSON.")
@pass_ctx
@handle_errors
def segment_preview(obj: Context, file: Path, sample: int, as_json: bool) -> None:
    """Show how many customers a segment file (or a campaign's audience) selects, and a sample.

    Scores come from the latest `scrm score` run; the sample lists the highest social value first.
    """
    from campaigns.segments import load_segment, preview

    obj.store.check_schema()
    seg = load_segment(file)
    count, rows = preview(obj.store, seg, sample=sample)
    if as_json:
        echo_json({"segment": seg.name, "count": count, "sample": rows})
        return
    console.print(f"Segment {seg.name}: {count:,} customers.", highlight=False)
    table = Table("customer", "name", "social value", "stage", "community")
    for r in rows:
        value = "" if r["social_value"] is None else f"{r['social_value']:.1f}"
        table.add_row(str(r["customer_id"]), r["name"], value, r["stage"], str(r["community"] or ""))
    if rows:
        console.print(table)


@segment.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the segments as JSON.")
@pass_ctx
@handle_errors
def segment_list(obj: Context, as_json: bool) -> None:
    """List the segments: the files of the campaigns folder and those saved from the web."""
    from campaigns.library import list_segments

    obj.store.check_schema()
    items = [s.as_dict() for s in list_segments(obj.store, obj.settings)]
    if as_json:
        echo_json(items)
        return
    table = Table("segment", "source", "description", "file or saved by")
    for it in items:
        table.add_row(it["name"], it["source"], it["description"], it["file"] or it["created_by"])
    console.print(table)


@cli.group("campaign")
def campaign() -> None:
    """Campaigns: audience + message + schedule or trigger, sent once and only once."""


@campaign.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the campaigns as JSON.")
@pass_ctx
@handle_errors
def campaign_list(obj: Context, as_json: bool) -> None:
    """List the campaigns of the campaigns folder ([campaigns] folder) and those saved from the web,
    with their latest run and whether they are paused."""
    from campaigns.library import list_campaigns

    obj.store.check_schema()
    items: list[dict[str, Any]] = []
    for info in list_campaigns(obj.store, obj.settings):
        item = info.as_dict()
        item.pop("definition")
        items.append(item)
    if as_json:
        echo_json(items)
        return
    table = Table("campaign", "source", "action", "when", "variants", "control", "latest run")
    for it in items:
        run = it["latest_run"]
        last = f"{run['run_key']} ({run['status']})" if run else ""
        when = ("paused, " if it["paused"] else "") + (it["when"] or f"invalid: {it['error']}")
        table.add_row(
            it["name"],
            it["source"],
            it["action"],
            when,
            ", ".join(it["variants"]),
            f"{it['control_percent']:g}%",
            last,
        )
    console.print(table)


@campaign.command("run")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Plan and render only: counts per outcome and samples.")
@click.option(
    "--at",
    type=click.DateTime(["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
    help="The scheduled time that keys the run (configured time zone). Default: resume the "
    "campaign's unfinished run, else now.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
@handle_errors
def campaign_run(obj: Context, name: str, dry_run: bool, at: datetime | None, as_json: bool) -> None:
    """Run campaign NAME now: plan each customer, then send each message once.

    A run is keyed by the campaign's name and scheduled time. Running it again (after a crash,
    or from another process at the same time) sends only what is still due, never twice:
    messages that were in flight when a process died are reported as "unknown", not resent.
    NAME is a campaign of the campaigns folder, one saved from the web, or a campaign file. A paused
    campaign is not run (`scrm campaign resume NAME`); a run paused while sending stops and is
    resumed, without sending anything twice, by running NAME again after the resume.
    """
    from campaigns.runner import campaign_account, run_campaign, unfinished_run
    from campaigns.saved import get_campaign
    from connectors.wechat import WeChatConnector

    settings = obj.settings
    obj.store.check_schema()
    c = get_campaign(obj.store, settings, name)
    key = None
    when = at.replace(tzinfo=settings.scrm.tz) if at else None
    if when is None and not dry_run:
        pending = unfinished_run(obj.store, c.name)
        if pending is not None:
            key, when = pending
    if dry_run:
        result = run_campaign(obj.store, settings, c, None, dry_run=True, scheduled_for=when)
    else:
        from scrm.sync_accounts import sync_accounts

        sync_accounts(obj.store, settings)
        account, _ = campaign_account(settings, c)
        _, connector = WeChatConnector.from_settings(settings, account)
        with connector:
            result = run_campaign(obj.store, settings, c, connector, scheduled_for=when, key=key)
    if as_json:
        echo_json(result.as_dict())
        return
    counts = result.counts
    status = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.status.items())) or "nobody"
    head = "Dry run of" if dry_run else ("Ran" if result.created else "Resumed")
    console.print(f"{head} {c.name} ({result.run_key}): {status}.", highlight=False)
    if counts.channels:
        console.print("By channel: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.channels.items())))
    if counts.reasons:
        console.print("Not sent: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.reasons.items())))
    if result.paused:
        console.print(f"Paused while sending: the rest waits for `scrm campaign resume {c.name}`.")
    if result.in_doubt:
        console.print(f"{result.in_doubt} messages were in flight when a dispatcher stopped: marked unknown.")
    if result.pending:
        console.print(
            f"{result.pending:,} deliveries wait for their time (quiet hours, send-time optimisation)."
        )
    for sample in result.samples:
        console.print(f"--- customer {sample['customer_id']} ({sample['variant']}, {sample['channel']})")
        console.print(sample.get("text") or sample.get("fields"), highlight=False, markup=False)


@campaign.command("report")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_ctx
@handle_errors
def campaign_report_cmd(obj: Context, name: str, as_json: bool) -> None:
    """Per variant and control group: sent, failed, replied and purchased, and the uplift over control.

    Replies and purchases count within the campaign's attribution_days after the send; the uplift
    is the difference of rates with a 95% Newcombe interval.
    """
    from campaigns.report import campaign_report
    from campaigns.saved import get_campaign

    obj.store.check_schema()
    c = get_campaign(obj.store, obj.settings, name)
    groups = campaign_report(obj.store, c.name, c.attribution_days)
    if as_json:
        echo_json(
            {
                "campaign": c.name,
                "attribution_days": c.attribution_days,
                "groups": [g.as_dict() for g in groups],
            }
        )
        return
    if not groups:
        console.print(f"Campaign {c.name} has not run yet: `scrm campaign run {c.name}`.")
        return
    table = Table("group", "assigned", "sent", "failed", "unknown", "replied", "bought")
    for g in groups:
        table.add_row(
            g.group,
            f"{g.assigned:,}",
            f"{g.sent:,}",
            f"{g.failed:,}",
            f"{g.unknown:,}",
            f"{g.replied:,} ({_pct(g.reply_rate)})",
            f"{g.purchased:,} ({_pct(g.purchase_rate)})",
        )
    console.print(f"Campaign {c.name}: replies and purchases within {c.attribution_days:g} days of the send.")
    console.print(table)
    for g in groups:
        if g.reply_uplift is not None:
            console.print(
                f"{g.group} vs control: replies {_uplift(g.reply_uplift)}, "
                f"purchases {_uplift(g.purchase_uplift)} (points, 95% Newcombe interval)",
                highlight=False,
            )


def _switch(obj: Context, name: str, paused: bool) -> None:
    from campaigns.library import set_paused

    obj.store.check_schema()
    changed = set_paused(obj.store, obj.settings, name, paused, "cli")
    word = "paused" if paused else "resumed"
    console.print(f"Campaign {name} {word}." if changed else f"Campaign {name} was already {word}.")


@campaign.command("pause")
@click.argument("name")
@pass_ctx
@handle_errors
def campaign_pause(obj: Context, name: str) -> None:
    """Pause campaign NAME: its schedule and triggers do nothing, a new run is refused, and a run
    that is sending stops at its next chunk (what is left waits, planned, for the resume)."""
    _switch(obj, name, True)


@campaign.command("resume")
@click.argument("name")
@pass_ctx
@handle_errors
def campaign_resume(obj: Context, name: str) -> None:
    """Resume campaign NAME: `scrm serve` (or `scrm campaign run NAME`) sends what its paused run left."""
    _switch(obj, name, False)
