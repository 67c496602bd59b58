"""The core commands: init, import, customers, customer, config, demo."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import cast

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from scrm.cli._common import (
    EXIT_REJECTED,
    Context,
    cli,
    console,
    echo_json,
    err_console,
    handle_errors,
    pass_ctx,
)
from scrm.money import format_money
from scrm.store import redact_url


@cli.command()
@pass_ctx
@handle_errors
def init(obj: Context) -> None:
    """Create the database schema, or upgrade it to this version; safe to run again."""
    from scrm.sync_accounts import sync_accounts

    store = obj.store
    before, after = store.upgrade()
    accounts = sync_accounts(store, obj.settings)
    where = redact_url(store.url)
    if before == after:
        console.print(f"Schema already at revision {after} in {where}.", highlight=False)
    elif before is None:
        console.print(f"Created the schema (revision {after}) in {where}.", highlight=False)
    else:
        console.print(f"Upgraded the schema {before} → {after} in {where}.", highlight=False)
    if accounts:
        console.print(f"Accounts: {', '.join(sorted(accounts))}.", highlight=False)


@cli.group("import")
def import_group() -> None:
    """Import data from files."""


@import_group.command("purchases")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--source", default="shop", show_default=True, help="Name of the shop or system.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Default: by suffix.")
@click.option("--encoding", default="utf-8-sig", show_default=True, help="Text encoding (e.g. gbk).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_ctx
@handle_errors
def import_purchases_cmd(
    obj: Context, file: Path, source: str, fmt: str | None, encoding: str, as_json: bool
) -> None:
    """Import orders from a CSV or JSON Lines export.

    \b
    Columns (header names, any order; others are ignored and reported):
      order_id   required  the shop's order number (one order is stored once)
      amount     required  total in major units, e.g. 128.50 (negative: a refund)
      time       required  ISO 8601 or unix seconds; no offset = configured time zone
      currency   optional  ISO 4217 code, default from [import] default_currency
      openid, unionid, phone, email
                 at least one: who bought (customers sharing a key are merged)
      account    optional  config name of the account an openid belongs to
      name       optional  buyer's name for new customers

    Bad rows are reported by line number and skipped; good rows are stored. Importing the
    same file again stores nothing twice. Exit code 3 when any row was rejected.
    """
    from connectors.orders import Format
    from connectors.sync import import_purchases

    # A progress bar on a terminal; none in --json mode or when output is piped.
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=as_json or not console.is_terminal,
    ) as bar:
        task = bar.add_task(f"Importing {file.name}", total=None)
        report = import_purchases(
            obj.store,
            obj.settings,
            file,
            source=source,
            format=cast("Format | None", fmt),
            encoding=encoding,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if as_json:
        echo_json(report.as_dict())
    else:
        rate = report.rows / report.seconds if report.seconds else 0.0
        console.print(
            f"{file}: {report.rows:,} rows in {report.seconds:.1f} s ({rate:,.0f} rows/s): "
            f"{report.imported:,} orders imported, {report.already_stored:,} already stored, "
            f"{len(report.rejected):,} rejected; {report.customers_created:,} new customers, "
            f"{len(report.merges):,} merges.",
            highlight=False,
        )
        if report.ignored_columns:
            console.print(f"Ignored columns: {', '.join(report.ignored_columns)}", highlight=False)
        for merge in report.merges[:10]:
            console.print(
                f"  merged customer {merge.merged_id} into {merge.kept_id}: {merge.reason}",
                highlight=False,
            )
        shown = report.rejected[:20]
        for error in shown:
            err_console.print(f"  rejected {error}", highlight=False, markup=False)
        if len(report.rejected) > len(shown):
            err_console.print(f"  ... and {len(report.rejected) - len(shown):,} more (use --json for all)")
    if report.rejected:
        sys.exit(EXIT_REJECTED)


@cli.command()
@click.option(
    "--search",
    "-s",
    help="3+ characters: anywhere in a name or key (phone, email, openid...), any case; "
    "1-2 characters: the start of a name.",
)
@click.option(
    "--sort",
    type=click.Choice(["id", "spent", "recent", "orders"]),
    default="id",
    show_default=True,
    help="Order: by id, total spent, latest purchase or number of orders.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="Customers per page.",
)
@click.option(
    "--offset",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Customers to skip (for paging).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
@handle_errors
def customers(obj: Context, search: str | None, sort: str, limit: int, offset: int, as_json: bool) -> None:
    """List and search customers."""
    from scrm.queries import list_customers

    obj.store.check_schema()
    total, page = list_customers(obj.store, search=search, sort=sort, limit=limit, offset=offset)  # type: ignore[arg-type]
    if as_json:
        echo_json({"total": total, "offset": offset, "customers": [c.as_dict() for c in page]})
        return
    table = Table(title=f"Customers {offset + 1}-{offset + len(page)} of {total:,}")
    for column in ("ID", "Name", "Known by", "Orders", "Spent", "Last purchase"):
        table.add_column(column, justify="right" if column in ("ID", "Orders") else "left")
    tz = obj.settings.scrm.tz
    for c in page:
        table.add_row(
            str(c.id),
            c.name,
            "\n".join(c.keys),
            str(c.orders),
            "\n".join(format_money(v, k) for k, v in sorted(c.spent.items())),
            c.last_purchase.astimezone(tz).strftime("%Y-%m-%d %H:%M") if c.last_purchase else "",
        )
    console.print(table)


@cli.command()
@click.argument("customer_id", type=int)
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="Latest interactions and purchases to show.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
@handle_errors
def customer(obj: Context, customer_id: int, limit: int, as_json: bool) -> None:
    """Show one customer: identities (and why they were merged), follows, interactions, purchases."""
    from scrm.queries import customer_record

    obj.store.check_schema()
    record = customer_record(obj.store, customer_id, limit=limit)
    if as_json:
        echo_json(record)
        return
    tz = obj.settings.scrm.tz

    def when(moment: datetime | None) -> str:
        return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment else ""

    title = f"Customer {record['id']}" + (f" · {record['name']}" if record["name"] else "")
    console.print(f"[bold]{title}[/]", highlight=False)
    if record["merged_from"]:
        console.print(f"(customer {record['merged_from']} was merged into this one)")
    if record["opted_out_at"]:
        console.print(f"Opted out at {when(record['opted_out_at'])}", highlight=False)
    came = record["acquisition"]
    if came["account"] is not None:
        how = f"channel {came['channel']}" if came["channel"] else "no channel"
        referrer = f", referred by customer {came['referred_by']}" if came["referred_by"] else ""
        console.print(
            f"Acquired: {how} ({came['scene'] or 'scene unknown'}) on {came['account']}{referrer}; "
            f"referred {came['referred']} follower(s)",
            highlight=False,
        )
    sections: list[tuple[str, list[str], list[list[str]]]] = [
        (
            "Identities",
            ["Kind", "Value", "Account", "Learnt from", "Since"],
            [
                [i["kind"], i["value"], i["account"] or "", i["source"], when(i["created_at"])]
                for i in record["identities"]
            ],
        ),
        (
            "Merges",
            ["Kept", "Merged", "Reason", "When"],
            [
                [str(m["kept_id"]), str(m["merged_id"]), m["reason"], when(m["created_at"])]
                for m in record["merges"]
            ],
        ),
        (
            "Merge evidence",
            ["Merge", "By", "Undo"],
            [
                [
                    str(m["id"]),
                    m["evidence"].get("by", "auto"),
                    m["undo"] or f"undone {when(m['undone_at'])}",
                ]
                for m in record["merges"]
            ],
        ),
        (
            "Follows",
            ["Account", "Subscribed", "Unsubscribed", "Scene", "Channel"],
            [
                [
                    f["account"],
                    when(f["subscribed_at"]),
                    when(f["unsubscribed_at"]),
                    f["scene"],
                    f["channel"],
                ]
                for f in record["follows"]
            ],
        ),
        (
            "Interactions",
            ["When", "Kind", "Platform", "With", "Content"],
            [
                [
                    when(x["occurred_at"]),
                    x["kind"],
                    x["platform"],
                    str(x["target_customer_id"] or ""),
                    x["content"][:60],
                ]
                for x in record["interactions"]
            ],
        ),
        (
            "Purchases",
            ["When", "Order", "Amount", "Source"],
            [
                [
                    when(p["occurred_at"]),
                    p["order_id"],
                    format_money(p["amount_minor"], p["currency"]),
                    p["source"],
                ]
                for p in record["purchases"]
            ],
        ),
    ]
    for name, columns, rows in sections:
        if not rows:
            console.print(f"{name}: none", highlight=False)
            continue
        table = Table(title=name, title_justify="left")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    totals = record["purchase_totals"]
    if totals:
        console.print(
            "Total: "
            + "; ".join(
                f"{t['orders']} orders, {format_money(t['spent_minor'], cur)}" for cur, t in totals.items()
            ),
            highlight=False,
        )
    if record["tags"]:
        console.print(f"Tags: {', '.join(record['tags'])}", highlight=False)


@cli.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
@handle_errors
def show_config(obj: Context, as_json: bool) -> None:
    """Check the settings and print them, secrets masked."""
    settings = obj.settings
    data = settings.model_dump(mode="json", by_alias=True)
    data["database"]["url"] = redact_url(settings.database_url)
    if as_json:
        echo_json({"source": settings.source, **data})
        return
    console.print(f"# settings from {settings.source or '(defaults: no config file)'}", highlight=False)
    console.print_json(data=data)


@cli.command()
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("demo-run"),
    show_default=True,
    help="Folder for the demo's own config and SQLite store (recreated each run).",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Then serve the dashboard on 127.0.0.1 (a user 'demo' with a random password is printed) "
    "until Ctrl-C.",
)
@click.option(
    "--port", default=8000, show_default=True, help="Port of the dashboard with --serve (0: any free port)."
)
@handle_errors
def demo(workdir: Path, serve: bool, port: int) -> None:
    """Run the main job end to end on a fresh embedded store and print what it found.

    With --serve, end by serving the web dashboard on the demo's store and print its address.
    """
    from scrm.demo import run_demo, serve_dashboard

    run_demo(workdir, console)
    if serve:
        serve_dashboard(workdir, console, port=port)
