"""The scoring commands: score, top, communities, explain, funnel, churn."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from rich.progress import TimeElapsedColumn
from rich.table import Table

from scrm.cli._common import Context, cli, console, echo_json, handle_errors, pass_ctx, progress_bar
from scrm.money import format_money

_COMPONENT_LABELS = {
    "influence": "influence",
    "reach": "reach",
    "community": "community role",
    "lifetime_value": "lifetime value",
}


def _day(moment: datetime | str | None, obj: Context) -> str:
    if moment is None:
        return ""
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value.astimezone(obj.settings.scrm.tz).strftime("%Y-%m-%d %H:%M")


def _as_of_line(run: dict[str, Any], obj: Context) -> str:
    return f"Scores of run {run['run_id']}, as of {_day(run['as_of'], obj)}."


@cli.command()
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"]),
    help="Score as of this time (configured time zone): decay and recency count from it, later "
    "purchases and follows are ignored. Default: now.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_ctx
@handle_errors
def score(obj: Context, as_of: datetime | None, as_json: bool) -> None:
    """Rescore every customer and store the scores as a new dated snapshot.

    Builds the relationship graph (referrals, shares read, replies, mentions; older ties weigh
    less), then computes influence (PageRank), reach, communities with their leaders and bridges,
    customer value (RFM, P(alive), lifetime value), lifecycle stages with churn warnings, and the
    combined social value. The previous snapshot stays current until the new one is complete.
    """
    from graph.pipeline import rescore

    now = as_of.replace(tzinfo=obj.settings.scrm.tz) if as_of else None
    obj.store.check_schema()
    with progress_bar(TimeElapsedColumn(), quiet=as_json) as bar:
        task = bar.add_task("Scoring", total=None)

        def step(name: str, done: int, total: int) -> None:
            bar.update(task, description=f"Scoring: {name}", completed=done, total=total)

        report = rescore(obj.store, obj.settings, now=now, progress=step)
    if as_json:
        echo_json(report.as_dict())
        return
    stages = ", ".join(f"{name} {count:,}" for name, count in report.stages.items())
    console.print(
        f"Scored {report.customers:,} customers ({report.edges:,} ties, {report.purchases:,} purchases) "
        f"in {report.seconds:.1f} s: {report.communities:,} communities (modularity "
        f"{report.modularity:.3f}); customer value by {report.value_method}; {stages}; "
        f"{report.stage_changes:,} stage changes, "
        f"{report.new_churn_warnings:,} new churn warnings ({report.resolved_churn_warnings:,} resolved). "
        f"Run {report.run_id} as of {_day(report.as_of, obj)}.",
        highlight=False,
    )


def _points_text(points: dict[str, float]) -> str:
    ranked = sorted(((v, k) for k, v in points.items() if v > 0), reverse=True)[:2]
    return " + ".join(f"{_COMPONENT_LABELS[k]} {v:.1f}" for v, k in ranked)


@cli.command()
@click.option(
    "--by",
    type=click.Choice(["social_value", "influence", "clv", "reach"]),
    default="social_value",
    show_default=True,
    help="Rank by the combined social value, influence (PageRank), lifetime value or two-hop reach.",
)
@click.option("--community", type=int, help="Only this community (ids: `scrm communities`).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="Rows.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
@handle_errors
def top(obj: Context, by: str, community: int | None, limit: int, as_json: bool) -> None:
    """The top customers of the latest scores, with what their social value is made of."""
    from graph.reports import top_customers

    obj.store.check_schema()
    run, rows = top_customers(obj.store, by=by, community=community, limit=limit)  # type: ignore[arg-type]
    if as_json:
        echo_json({**run.as_dict(), "by": by, "customers": rows})
        return
    table = Table(
        title=f"Top {len(rows)} by {by}" + (f" in community {community}" if community is not None else "")
    )
    customers = run.summary.get("customers", 1)  # PageRank x customers: 1.0 is the average customer
    for column in (
        "#",
        "ID",
        "Name",
        "Social value",
        "Influence ×avg",
        "Reach",
        "CLV",
        "Comm.",
        "Stage",
        "Made of",
    ):
        table.add_column(
            column,
            justify="right" if column in ("#", "ID", "Social value", "Influence ×avg", "Reach") else "left",
        )
    for rank, r in enumerate(rows, 1):
        table.add_row(
            str(rank),
            str(r["customer_id"]),
            r["name"],
            f"{r['social_value']:.1f}",
            f"{r['influence'] * customers:.1f}",
            f"{r['reach_two_hop']:,}",
            format_money(r["clv_minor"], run.currency),
            "" if r["community_id"] is None else str(r["community_id"]),
            r["stage"],
            _points_text(r["points"]),
        )
    console.print(table)
    console.print(_as_of_line(run.as_dict(), obj), highlight=False)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
@handle_errors
def communities(obj: Context, as_json: bool) -> None:
    """The communities of the latest scores: size, leaders and bridges (who connects them)."""
    from graph.reports import community_report

    obj.store.check_schema()
    run, rows = community_report(obj.store)
    if as_json:
        echo_json({**run.as_dict(), "modularity": run.summary.get("modularity"), "communities": rows})
        return
    table = Table(title=f"{len(rows)} communities (modularity {run.summary.get('modularity', 0.0):.3f})")
    for column in ("ID", "Label", "Size", "Q share", "Leaders", "Bridges"):
        table.add_column(column, justify="right" if column in ("ID", "Size", "Q share") else "left")

    def who(people: list[dict[str, Any]]) -> str:
        return ", ".join(f"{p['name'] or 'customer'} ({p['id']})" for p in people)

    for c in rows:
        bridges = f"{c['bridges']:,}" + (f": {who(c['top_bridges'])}" if c["top_bridges"] else "")
        table.add_row(
            str(c["community_id"]),
            c["label"],
            f"{c['size']:,}",
            f"{c['modularity_share']:.3f}",
            who(c["leaders"]),
            bridges,
        )
    console.print(table)
    console.print(_as_of_line(run.as_dict(), obj), highlight=False)


@cli.command()
@click.argument("customer_id", type=int)
@click.option("--history", type=click.IntRange(1, 100), default=5, show_default=True, help="Past runs shown.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
@handle_errors
def explain(obj: Context, customer_id: int, history: int, as_json: bool) -> None:
    """Why a customer scores what they score: each component's value, normalised value and points,
    RFM, P(alive), lifetime value, lifecycle stage and why, and the recent trend of the social value."""
    from graph.reports import explain_customer

    obj.store.check_schema()
    e = explain_customer(obj.store, customer_id, history=history)
    if as_json:
        echo_json(e)
        return
    cur = e["currency"]
    title = f"Customer {e['customer_id']}" + (f" · {e['name']}" if e["name"] else "")
    console.print(f"[bold]{title}[/]: social value {e['social_value']:.1f} of 100", highlight=False)
    if e["merged_from"]:
        console.print(f"(customer {e['merged_from']} was merged into this one)", highlight=False)
    table = Table(title="Social value", title_justify="left")
    for column in ("Component", "Value", "Normalised", "Weight", "Points"):
        table.add_column(column, justify="left" if column == "Component" else "right")
    for c in e["components"]:
        value = c["value"]
        shown = (
            format_money(value, cur)
            if c["component"] == "lifetime_value"
            else (f"{value:.3g}" if isinstance(value, float) else f"{value:,}")
        )
        table.add_row(
            _COMPONENT_LABELS[c["component"]],
            shown,
            f"{c['normalised']:.2f}",
            f"{c['weight']:.2f}",
            f"{c['points']:.1f}",
        )
    console.print(table)
    role = "leader" if e["is_leader"] else ("bridge" if e["is_bridge"] else "member")
    community = "none" if e["community_id"] is None else f"{e['community_id']} ({role})"
    p_alive = "n/a" if e["p_alive"] is None else f"{e['p_alive']:.2f}"
    since = "never bought" if e["recency_days"] is None else f"last purchase {e['recency_days']:.0f} days ago"
    lines = [
        f"Influence {e['influence']:.3g} ({e['influence'] * e['customers']:.1f}x the average); "
        f"audience {e['reach_direct']:,} direct, {e['reach_two_hop']:,} within two hops; "
        f"referred {e['referral_reach']:,}; community {community}.",
        f"RFM {e['rfm'] or '-'}: {since}, {e['frequency']} repeat purchases, "
        f"{format_money(e['monetary_minor'], cur)} spent.",
        f"P(alive) {p_alive}; expected purchases {e['expected_purchases'] or 0:.1f}; "
        f"lifetime value {format_money(e['clv_minor'], cur)}.",
        f"Stage: {e['stage']}"
        + (f" since {_day(e['stage_since'], obj)}" if e["stage_since"] else "")
        + (f" (from {e['stage_from']})" if e["stage_from"] else "")
        + (f": {e['stage_reason']}" if e["stage_reason"] else ""),
    ]
    if e["churn_warning"]:
        lines.append(
            f"Churn warning since {_day(e['churn_warning']['since'], obj)}: "
            + "; ".join(e["churn_warning"]["reasons"])
        )
    trend = ", ".join(
        f"{_day(h['as_of'], obj)[:10]} {h['social_value']:.1f} ({h['stage']})" for h in e["history"]
    )
    lines.append(f"History: {trend}.")
    for line in lines:
        console.print(line, highlight=False)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
@handle_errors
def funnel(obj: Context, as_json: bool) -> None:
    """The lifecycle funnel: customers per stage, moves between stages with their conversion rates,
    and the median time customers spend in each stage."""
    from graph.reports import funnel_report

    obj.store.check_schema()
    f = funnel_report(obj.store)
    if as_json:
        echo_json(f)
        return
    table = Table(title="Lifecycle stages")
    for column in ("Stage", "Now", "Ever entered", "Median days in stage"):
        table.add_column(column, justify="left" if column == "Stage" else "right")
    for s in f["stages"]:
        days = "" if s["median_days_in_stage"] is None else f"{s['median_days_in_stage']:.0f}"
        table.add_row(s["stage"], f"{s['customers']:,}", f"{s['entered']:,}", days)
    console.print(table)
    rates = Table(title="Conversion (of those who entered the first stage, the share who reached the second)")
    for column in ("From", "To", "Rate"):
        rates.add_column(column, justify="right" if column == "Rate" else "left")
    for c in f["conversion"]:
        rates.add_row(c["from"], c["to"], "" if c["rate"] is None else f"{c['rate']:.0%}")
    console.print(rates)
    if f["moves"]:
        moves = Table(title="Recorded moves between stages")
        for column in ("From", "To", "Customers"):
            moves.add_column(column, justify="right" if column == "Customers" else "left")
        for m in f["moves"]:
            moves.add_row(m["from"], m["to"], f"{m['customers']:,}")
        console.print(moves)
    else:
        console.print("No moves between stages yet: they are recorded from the second `scrm score` on.")
    console.print(_as_of_line(f, obj), highlight=False)


@cli.command()
@click.option(
    "--limit",
    type=click.IntRange(1, 1_000_000),
    default=50,
    show_default=True,
    help="At most this many (most valuable first).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
@handle_errors
def churn(obj: Context, limit: int, as_json: bool) -> None:
    """Current churn warnings: customers at risk of leaving, most valuable first, with the reasons."""
    from graph.reports import churn_report

    obj.store.check_schema()
    run, total, rows = churn_report(obj.store, limit=limit)
    if as_json:
        echo_json({**run.as_dict(), "total": total, "warnings": rows})
        return
    if not rows:
        console.print("No open churn warnings.", highlight=False)
    else:
        shown = f"the {len(rows):,} most valuable of " if len(rows) < total else ""
        table = Table(title=f"Churn warnings: {shown}{total:,}")
        for column in ("ID", "Name", "Since", "P(alive)", "Days silent", "CLV", "Raised because"):
            table.add_column(
                column, justify="right" if column in ("ID", "P(alive)", "Days silent") else "left"
            )
        for r in rows:
            table.add_row(
                str(r["customer_id"]),
                r["name"],
                _day(r["since"], obj)[:10],
                "" if r["p_alive"] is None else f"{r['p_alive']:.2f}",
                "" if r["days_since_purchase"] is None else f"{r['days_since_purchase']:.0f}",
                "" if r["clv_minor"] is None else format_money(r["clv_minor"], run.currency),
                "; ".join(r["reasons"]),
            )
        console.print(table)
    console.print(_as_of_line(run.as_dict(), obj), highlight=False)
