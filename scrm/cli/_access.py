"""``scrm token create|list|revoke`` and ``scrm user add``: who may use the web API and the dashboard."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from scrm.cli._common import Context, cli, console, echo_json, err_console, handle_errors, pass_ctx
from scrm.errors import ConfigError
from scrm.models_web import ROLES

_ROLE_HELP = (
    "viewer: reads everything; marketer: also segments, campaigns and purchase imports; "
    "admin: also tokens, users and the audit log."
)


@cli.group("token")
def token_group() -> None:
    """API tokens for the REST API (/api/v1): create, list, revoke.

    A client sends its token as `Authorization: Bearer <token>`. Only the token's
    SHA-256 is stored: it is shown once, when created.
    """


@token_group.command("create")
@click.option("--name", required=True, help="What the token is for (shown in lists and the audit log).")
@click.option("--role", type=click.Choice(ROLES), required=True, help=_ROLE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the token under 'token').")
@pass_ctx
@handle_errors
def token_create(obj: Context, name: str, role: str, as_json: bool) -> None:
    """Create an API token and print it (this once: it cannot be shown again)."""
    from scrm.access import issue_token

    obj.store.check_schema()
    row = issue_token(obj.store, name, role)
    if as_json:
        echo_json(row)
        return
    click.echo(row["token"])
    err_console.print(
        f"Token {row['id']} ({name}, role {role}) created; keep it now, it is not shown again. "
        f"Revoke it with: scrm token revoke {row['id']}",
        highlight=False,
    )


@token_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
@handle_errors
def token_list(obj: Context, as_json: bool) -> None:
    """List the API tokens (their first characters, never the tokens): role, created, last used."""
    from scrm.access import list_tokens

    obj.store.check_schema()
    rows = list_tokens(obj.store)
    if as_json:
        echo_json({"tokens": rows})
        return
    table = Table(title=f"API tokens ({len(rows)})")
    for column in ("ID", "Name", "Starts with", "Role", "Created", "Last used", "Revoked"):
        table.add_column(column, justify="right" if column == "ID" else "left")
    tz = obj.settings.scrm.tz
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["name"],
            r["prefix"],
            r["role"],
            *(
                r[k].astimezone(tz).strftime("%Y-%m-%d %H:%M") if r[k] else ""
                for k in ("created_at", "last_used_at", "revoked_at")
            ),
        )
    console.print(table)


@token_group.command("revoke")
@click.argument("token_id", type=int)
@pass_ctx
@handle_errors
def token_revoke(obj: Context, token_id: int) -> None:
    """Revoke the API token TOKEN_ID (ids: `scrm token list`): it is refused from now on."""
    from scrm.access import revoke_token

    obj.store.check_schema()
    revoke_token(obj.store, token_id)
    console.print(f"Token {token_id} revoked.", highlight=False)


@cli.group("user")
def user_group() -> None:
    """Dashboard users (log in with a username and password)."""


@user_group.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True, help=_ROLE_HELP)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (for scripts) instead of a prompt.",
)
@pass_ctx
@handle_errors
def user_add(obj: Context, username: str, role: str, password_stdin: bool) -> None:
    """Add dashboard user USERNAME, or set an existing user's password and role.

    The password (8 characters or more) is asked for twice, or read from standard
    input with --password-stdin; it is stored hashed with Argon2id.
    """
    from scrm.access import create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise ConfigError("no password given")
    obj.store.check_schema()
    create_user(obj.store, username, password, role)
    console.print(f"User {username} ({role}) saved.", highlight=False)
