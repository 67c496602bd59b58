"""``scrm wecom-simulator``: run the bundled WeCom (企业微信) simulator in the foreground."""

from __future__ import annotations

import contextlib
import json

import click

from scrm.cli._common import cli, console, handle_errors


@cli.command("wecom-simulator")
@click.option("--port", default=8701, show_default=True, help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--contacts", default=1000, show_default=True, help="External contacts to generate.")
@click.option("--groups", type=int, help="Customer groups (default: one per 20 contacts).")
@click.option("--memberships", type=int, help="Group members in all (default: 30 per group).")
@click.option("--seed", default=7, show_default=True, help="Seed of the generated corp.")
@click.option(
    "--unionids-from",
    type=int,
    metavar="FOLLOWERS",
    help="Share unionids with `scrm simulator --followers FOLLOWERS` of the same --seed.",
)
@click.option(
    "--secret", envvar="SCRM_WECOM_SIMULATOR_SECRET", help="corpsecret to accept (default: generated)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the start-up details as one JSON line.")
@handle_errors
def wecom_simulator(
    port: int,
    host: str,
    contacts: int,
    groups: int | None,
    memberships: int | None,
    seed: int,
    unionids_from: int | None,
    secret: str | None,
    as_json: bool,
) -> None:
    """Run a WeCom simulator on HOST:PORT until Ctrl-C.

    It speaks WeCom's JSON API under /cgi-bin/ (gettoken, user/simplelist,
    externalcontact/get_follow_user_list, list, get, batch/get_by_user,
    groupchat/list, groupchat/get) with WeCom's errcodes, over a corp generated
    from --seed: staff, external contacts with channels, customer groups with
    invitation chains, joins, leaves and deletions over the clock. Put its
    corpid, secret and base URL in an [accounts.NAME] table with
    platform = "wecom" (api_base = the base URL, events_url = the printed
    events URL) and run `scrm sync wecom`. With --unionids-from, contacts share
    the unionids of the Official Account simulator's followers, so the two
    syncs meet on the same people. Also served: /_sim/requests, /_sim/clock.
    """
    from connectors.wechat_sim import generate_population
    from connectors.wecom_sim import WeComSimulator, generate_wecom_population

    unionids = None
    if unionids_from:
        unionids = [u for u in generate_population(unionids_from, seed=seed).unionids if u]
    pop = generate_wecom_population(
        contacts, groups=groups, memberships=memberships, unionids=unionids, seed=seed
    )
    sim = WeComSimulator(pop, secret=secret, host=host, port=port)
    sim.bind()
    info: dict[str, object] = {
        "api_base": sim.base_url,
        "events_url": sim.events_url,
        "corpid": sim.corpid,
        "contacts": contacts,
        "groups": len(pop.groups),
        "memberships": pop.memberships,
        "clock": sim.clock.now().isoformat(),
    }
    if secret is None:
        info["secret"] = sim.secret
    if as_json:
        click.echo(json.dumps(info))
    else:
        for key, value in info.items():
            console.print(f"[bold]{key:>12}[/]  {value}", highlight=False)
        console.print("Serving; Ctrl-C stops.", highlight=False)
    with contextlib.suppress(KeyboardInterrupt):
        sim.serve_forever()
