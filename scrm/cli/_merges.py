"""``scrm merge``, ``scrm unmerge``, ``scrm merges suggest``: customers merged by hand, undone, suggested."""

from __future__ import annotations

import click
from rich.table import Table

from scrm.cli._common import Context, cli, console, echo_json, handle_errors, pass_ctx


@cli.command("merge")
@click.argument("kept", type=int)
@click.argument("merged", type=int)
@click.option("--reason", required=True, help="Why they are one person (kept with the merge).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
@handle_errors
def merge_cmd(obj: Context, kept: int, merged: int, reason: str, as_json: bool) -> None:
    """Merge customer MERGED into customer KEPT (one person), keeping the evidence.

    Every row of MERGED (identities, follows, interactions, purchases, tags,
    relations, group memberships) moves to KEPT; which rows moved is recorded,
    so `scrm unmerge MERGE_ID` restores them exactly. An open suggestion for
    the pair (`scrm merges suggest`) is marked accepted and its clues are kept
    with the merge.
    """
    from scrm.merges import manual_merge

    obj.store.check_schema()
    with obj.store.connect() as conn:
        merge_id = manual_merge(conn, kept, merged, reason=reason)
    if as_json:
        echo_json(
            {"merge_id": merge_id, "kept_id": kept, "merged_id": merged, "undo": f"scrm unmerge {merge_id}"}
        )
        return
    console.print(
        f"Merged customer {merged} into {kept} (merge {merge_id}). Undo with: scrm unmerge {merge_id}",
        highlight=False,
    )


@cli.command("unmerge")
@click.argument("merge_id", type=int)
@click.option(
    "--customer", "by_customer", is_flag=True, help="MERGE_ID is the merged customer's id (its latest merge)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
@handle_errors
def unmerge_cmd(obj: Context, merge_id: int, by_customer: bool, as_json: bool) -> None:
    """Undo merge MERGE_ID: the merged customer gets back exactly the rows that merge moved.

    Rows created after the merge (an order imported later under either key)
    stay with the kept customer. A merge whose kept customer was merged again
    later is refused until that later merge is undone. `scrm customer ID`
    lists a customer's merges with their ids.
    """
    from scrm.merges import find_merge, unmerge

    obj.store.check_schema()
    with obj.store.connect() as conn:
        result = unmerge(conn, find_merge(conn, merge_id, by_customer=by_customer))
    if as_json:
        echo_json(
            {
                "merge_id": result.merge_id,
                "kept_id": result.kept_id,
                "restored_id": result.restored_id,
                "rows_moved_back": result.rows_moved_back,
                "rows_restored": result.rows_restored,
            }
        )
        return
    console.print(
        f"Undid merge {result.merge_id}: customer {result.restored_id} is separate from "
        f"{result.kept_id} again ({result.rows_moved_back} rows moved back, "
        f"{result.rows_restored} restored).",
        highlight=False,
    )


@cli.group("merges")
def merges_group() -> None:
    """Customers that may be one person: suggestions to merge by hand."""


@merges_group.command("suggest")
@click.option(
    "--min-score", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True, help="Lowest score kept."
)
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True, help="Rows to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
@handle_errors
def suggest_cmd(obj: Context, min_score: float, limit: int, as_json: bool) -> None:
    """Find pairs of customers that may be one person, store and list them (best first).

    \b
    Clues (weights, combined as 1 - prod(1 - w)): a phone or email shown
    but not verified equals the other's (0.60), same display name (0.35),
    a social handle like the other's name or handle (0.30), same first
    channel (0.25), members of the same customer group (0.25).
    Accept one with `scrm merge A B --reason ...`; merges on strong keys
    (unionid, verified phone or email) happen on their own during imports.
    """
    from scrm.merge_suggestions import compute_suggestions, list_suggestions

    obj.store.check_schema()
    with obj.store.connect() as conn:
        compute_suggestions(conn, min_score=min_score)
        found = [s for s in list_suggestions(conn, limit=limit) if s.score >= min_score]
    if as_json:
        echo_json([s.as_dict() for s in found])
        return
    if not found:
        console.print("No suggestions at this score.")
        return
    table = Table("Id", "Customers", "Score", "Clues", "Accept with")
    for s in found:
        clues = ", ".join(f"{c['clue']} ({c['detail']})" for c in s.evidence)
        table.add_row(
            str(s.id),
            f"{s.customer_a} + {s.customer_b}",
            f"{s.score:.2f}",
            clues,
            f"scrm merge {s.customer_a} {s.customer_b} --reason ...",
        )
    console.print(table)
