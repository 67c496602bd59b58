"""``scrm simulator``: run the bundled WeChat Official Account simulator in the foreground."""

from __future__ import annotations

import json
from pathlib import Path

import click

from scrm.cli._common import cli, console, handle_errors


@cli.command("simulator")
@click.option("--port", default=8700, show_default=True, help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--followers", default=1000, show_default=True, help="How many followers to generate.")
@click.option("--seed", default=7, show_default=True, help="Seed of the generated population.")
@click.option("--weeks", default=8, show_default=True, help="Weeks of simulated follower activity.")
@click.option(
    "--clock-at",
    type=click.Choice(["end", "start"]),
    default="end",
    show_default=True,
    help="Start the clock at the end of the activity (a sync sees the final state) or at its start.",
)
@click.option("--appid", envvar="SCRM_SIMULATOR_APPID", help="AppID to accept (default: generated).")
@click.option("--secret", envvar="SCRM_SIMULATOR_SECRET", help="AppSecret to accept (default: generated).")
@click.option("--token", envvar="SCRM_SIMULATOR_TOKEN", help="Callback token (default: generated).")
@click.option(
    "--encoding-aes-key",
    envvar="SCRM_SIMULATOR_AES_KEY",
    help="Callback EncodingAESKey (default: generated).",
)
@click.option(
    "--orders-out", type=click.Path(path_type=Path, dir_okay=False), help="Write the shop's orders CSV."
)
@click.option(
    "--orders-account", default="demo", show_default=True, help="`account` column of the orders CSV."
)
@click.option(
    "--log", "log_path", type=click.Path(path_type=Path, dir_okay=False), help="Save requests on exit."
)
@click.option("--json", "as_json", is_flag=True, help="Print the start-up details as one JSON line.")
@handle_errors
def simulator(
    port: int,
    host: str,
    followers: int,
    seed: int,
    weeks: int,
    clock_at: str,
    appid: str | None,
    secret: str | None,
    token: str | None,
    encoding_aes_key: str | None,
    orders_out: Path | None,
    orders_account: str,
    log_path: Path | None,
    as_json: bool,
) -> None:
    """Run a WeChat Official Account simulator on HOST:PORT until Ctrl-C.

    It speaks WeChat's JSON API under /cgi-bin/ (point wechatpy's API_BASE_URL or an account's
    api_base at http://HOST:PORT/cgi-bin/), serves a population generated from --seed, and
    enforces WeChat's tokens, quotas and sending windows. Credentials not given are generated and
    printed; given secrets are never printed. Also served: /track/share_reads (tracked share
    links), /_sim/requests (the request log), /_sim/clock (GET; POST {"advance": seconds} or
    {"set": iso}) and /_sim/orders.csv (the shop's orders in the purchases import format).
    """
    from connectors.wechat_sim import SimulatorServer, generate_population

    pop = generate_population(followers, seed=seed, weeks=weeks)
    sim = SimulatorServer(
        pop,
        appid=appid,
        secret=secret,
        token=token,
        encoding_aes_key=encoding_aes_key,
        host=host,
        port=port,
        clock_at="end" if clock_at == "end" else "start",
        orders_account=orders_account,
    )
    if orders_out is not None:
        pop.write_orders_csv(orders_out, account=orders_account, until=sim.clock.timestamp())
    sock_port = sim.bind()
    info: dict[str, object] = {
        "base_url": sim.base_url,
        "api_base": sim.api_base_url,
        "share_reads_url": sim.share_reads_url,
        "port": sock_port,
        "followers": followers,
        "seed": seed,
        "clock": sim.clock.now().isoformat(),
        "appid": sim.appid,
    }
    generated = {"secret": secret, "token": token, "encoding_aes_key": encoding_aes_key}
    for name, given in generated.items():
        if given is None:
            info[name] = getattr(sim, name)
    if as_json:
        click.echo(json.dumps(info), nl=True)
    else:
        for key, value in info.items():
            console.print(f"[bold]{key:>16}[/]  {value}", highlight=False)
        for name, given in generated.items():
            if given is not None:
                console.print(f"[bold]{name:>16}[/]  (as given)", highlight=False)
        console.print("Serving; Ctrl-C stops.", highlight=False)
    try:
        sim.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if log_path is not None:
            sim.save_log(log_path)
            if not as_json:
                console.print(f"Saved {len(sim.requests())} requests to {log_path}.", highlight=False)
