"""What every ``scrm`` command shares: the group, its context (settings, store), errors, output.

Exit codes: 0 done; 1 error (the message says what to do); 2 wrong usage;
3 done, but some input rows were rejected (listed in the output).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn

from scrm import __version__
from scrm.config import Settings, load_settings
from scrm.errors import ScrmError
from scrm.store import Store

__all__ = [
    "EXIT_REJECTED",
    "Context",
    "cli",
    "console",
    "echo_json",
    "err_console",
    "handle_errors",
    "pass_ctx",
    "progress_bar",
]

F = TypeVar("F", bound=Callable[..., Any])
EXIT_REJECTED = 3

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, default=_json_default, ensure_ascii=False, indent=2))


def progress_bar(*columns: ProgressColumn, quiet: bool = False) -> Progress:
    """A transient progress bar (description, bar, then ``columns``) on the console; none when
    ``quiet`` (``--json``) or when the output is not a terminal."""
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        *columns,
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
    )


class Context:
    """Settings and store, created on first use so that `--help` needs neither."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._settings: Settings | None = None
        self._store: Store | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    @property
    def store(self) -> Store:
        if self._store is None:
            s = self.settings
            self._store = Store(s.database_url, echo=s.database.echo)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def handle_errors(func: F) -> F:
    """Turn library errors into a one-line message on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ScrmError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    envvar="SCRM_CONFIG",
    help="Settings file (default: ./config.toml; env SCRM_CONFIG).",
)
@click.version_option(__version__, prog_name="scrm")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """scrm: a social CRM. Sync followers, score who influences whom, run campaigns.

    Settings come from config.toml (see --config); SCRM_<SECTION>__<KEY> environment variables
    override single keys. Exit codes: 0 done, 1 error, 2 wrong usage, 3 done with rejected rows.
    """
    obj = Context(config_path)
    ctx.obj = obj
    ctx.call_on_close(obj.close)
