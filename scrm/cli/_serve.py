"""``scrm serve``: run the web app (the bot's WeChat callbacks, the REST API, the dashboard) under uvicorn."""

from __future__ import annotations

import os

import click
import uvicorn

from scrm.cli._common import Context, cli, console, handle_errors, pass_ctx


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, help="Port to listen on.")
@click.option(
    "--workers", default=1, show_default=True, help="Server processes (use PostgreSQL or SQLite WAL)."
)
@click.option("--log-level", default="warning", show_default=True, help="uvicorn's log level.")
@pass_ctx
@handle_errors
def serve(ctx: Context, host: str, port: int, workers: int, log_level: str) -> None:
    """Serve the bot (WeChat callbacks at http://HOST:PORT/wechat/<account name>), the REST API
    (http://HOST:PORT/api/v1, described at /api/v1/docs; tokens: `scrm token create`) and the
    dashboard (http://HOST:PORT/, in English and Chinese; users: `scrm user add`; sessions: [web]).

    Each [accounts.NAME] with a token gets an endpoint (set its URL, token and EncodingAESKey in
    the account's console); replies follow the [bot.rules] of config.toml. The schema must be
    current (`scrm init`). Several workers share the store: each message is handled once.
    """
    settings = ctx.settings
    ctx.store.check_schema()
    names = [n for n, a in settings.accounts.items() if a.platform == "wechat" and a.token is not None]
    if not names:
        console.print(
            "no account has a callback token ([accounts.NAME] token and encoding_aes_key): the bot is off",
            highlight=False,
        )
    if workers < 1:
        raise click.BadParameter("at least 1", param_hint="--workers")
    if settings.source is not None:
        os.environ["SCRM_CONFIG"] = str(settings.source)  # the worker processes load the same file
    for name in names:
        console.print(f"callback URL of account {name}: http://{host}:{port}/wechat/{name}")
    console.print(f"REST API: http://{host}:{port}/api/v1 (described at /api/v1/docs)", highlight=False)
    console.print(f"dashboard: http://{host}:{port}/ (users: scrm user add)", highlight=False)
    from campaigns.scheduler import start_scheduler  # scheduled and triggered campaigns (issue 6)

    scheduler = start_scheduler(ctx.store, settings)
    if scheduler is not None:
        console.print(f"campaign scheduler: {len(scheduler.get_jobs())} jobs, persisted in the store")
    uvicorn.run(
        "scrm.web.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        ws="none",  # no websockets: callbacks and the API are plain HTTP
    )
