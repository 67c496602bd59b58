"""``scrm demo``: the main job end to end on a fresh embedded store and the bundled simulators.

It writes its own ``config.toml`` and SQLite file into a work folder (recreated on every run, never
touching the user's store), starts the WeChat Official Account and WeCom simulators on 127.0.0.1
(real HTTP servers speaking the platforms' wire formats), and then runs what a user would:

1. ``init``; ``sync wechat`` (followers, profiles, channels, referrals, tags, share reads) and
   ``sync wecom`` (external contacts and customer groups; unionids link people across both);
2. ``import purchases`` of the brand shop's order export for the same people (twice: nothing is
   stored twice);
3. ``score``: influence, reach, communities, customer value, lifecycle and social value, then the
   leaderboard, the communities, one customer's explanation, the funnel and churn warnings;
4. the bot: a few followers write to the account; the simulator pushes their messages to
   ``scrm serve``'s callback (signed and AES-encrypted, as WeChat does) and shows the replies;
5. a campaign inviting the leaders of every community: dry run, run, report, and a second run that
   sends nothing twice (the simulator's request log is saved to show it).

With ``--serve`` (:func:`serve_dashboard`) it then creates a dashboard user ``demo`` with a random
password, serves the web app on 127.0.0.1 and prints the dashboard's address, until Ctrl-C.
"""

from __future__ import annotations

import re
import secrets
import shutil
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.rule import Rule

__all__ = ["DEMO_USER", "run_demo", "serve_dashboard"]

#: the project's example campaign files (campaigns.d/ beside the packages)
CAMPAIGNS = Path(__file__).resolve().parents[1] / "campaigns.d"

DEMO_CONFIG = """\
# Written by `scrm demo`: an embedded SQLite store in this folder, and accounts pointing at the
# simulators the demo started on 127.0.0.1 (they stop when the demo ends).
[scrm]
timezone = "Asia/Shanghai"

[database]
url = "sqlite:///scrm.db"

[campaigns]
folder = "campaigns.d"
# No quiet hours in the demo, so that it sends whenever it runs (the default is 22:00-08:00).
quiet_hours_start = "00:00"
quiet_hours_end = "00:00"

[accounts.demo]
platform = "wechat"
appid = "{appid}"
secret = "{secret}"
token = "{token}"
encoding_aes_key = "{aes_key}"
api_base = "{api_base}"
share_reads_url = "{share_reads_url}"
display_name = "scrm demo account"

[accounts.corp]
platform = "wecom"
corpid = "{corpid}"
secret = "{corp_secret}"
api_base = "{corp_api_base}"
events_url = "{events_url}"
display_name = "scrm demo staff"
"""

#: the dashboard user ``--serve`` creates (an admin, with a random password printed once)
DEMO_USER = "demo"
#: what the demo's followers say to the bot
MESSAGES = ["你好", "help", "When is the next meetup?"]


def _step(console: Console, args: list[str], config: Path) -> None:
    from scrm.cli import cli

    shown = " ".join(a if " " not in a else repr(a) for a in args)
    console.print(Rule(f"$ scrm {shown}", align="left", style="cyan"))
    try:
        cli.main(["--config", str(config), *args], prog_name="scrm", standalone_mode=False)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise


def _prepare(workdir: Path) -> None:
    if workdir.exists():
        if not (workdir / "config.toml").is_file():
            from scrm.errors import ScrmError

            raise ScrmError(f"{workdir} exists and is not a demo folder; pick another --workdir")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    shutil.copytree(CAMPAIGNS, workdir / "campaigns.d")


def run_demo(workdir: Path, console: Console, *, followers: int = 2000, seed: int = 42) -> None:
    """Run the demo in ``workdir`` (deleted and recreated) and print every step."""
    from connectors.wechat_sim import SimulatorServer, generate_population
    from connectors.wecom_sim import WeComSimulator, generate_wecom_population

    _prepare(workdir)
    # The simulated weeks end today, so that the platform's windows and the scores' "now" agree.
    weeks = 8
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    population = generate_population(followers, seed=seed, start=today - timedelta(weeks=weeks), weeks=weeks)
    unionids = [u for u in population.unionids if u]
    corp = generate_wecom_population(
        followers // 4, unionids=unionids[: followers // 8], seed=seed, start=population.start, weeks=weeks
    )
    console.print(
        f"[bold]scrm demo[/] in {workdir}/: a fresh SQLite store, a simulated WeChat account with "
        f"{len(population):,} followers and a simulated WeCom corp with {len(corp.contacts):,} "
        "customers (seed {seed}).".replace("{seed}", str(seed)),
        highlight=False,
    )
    with (
        SimulatorServer(population, orders_account="demo") as sim,
        WeComSimulator(corp, clock_at=population.end) as wecom,
    ):
        config = workdir / "config.toml"
        config.write_text(
            DEMO_CONFIG.format(
                appid=sim.appid,
                secret=sim.secret,
                token=sim.token,
                aes_key=sim.encoding_aes_key,
                api_base=sim.base_url,
                share_reads_url=sim.share_reads_url,
                corpid=wecom.corpid,
                corp_secret=wecom.secret,
                corp_api_base=wecom.base_url,
                events_url=wecom.events_url,
            ),
            encoding="utf-8",
        )
        orders = workdir / "shop_orders.csv"
        population.write_orders_csv(orders, account="demo")

        console.print(Rule("Identify: who are our customers?", style="bold magenta"))
        _step(console, ["init"], config)
        _step(console, ["sync", "wechat"], config)
        _step(console, ["sync", "wecom"], config)
        _step(console, ["import", "purchases", str(orders)], config)
        console.print("(importing the same file again stores nothing twice:)")
        _step(console, ["import", "purchases", str(orders)], config)

        console.print(Rule("Differentiate: who matters, and why?", style="bold magenta"))
        _step(console, ["score"], config)
        _step(console, ["top", "--by", "social_value", "--limit", "10"], config)
        _step(console, ["communities"], config)
        top = _top_customer(config)
        if top is not None:
            _step(console, ["explain", str(top)], config)
            _step(console, ["customer", str(top), "--limit", "5"], config)
        _step(console, ["funnel"], config)
        _step(console, ["churn", "--limit", "5"], config)

        console.print(Rule("Interact: followers write, the bot answers", style="bold magenta"))
        _bot(console, config, sim)

        console.print(Rule("Customise: invite each community's leaders", style="bold magenta"))
        # A run is keyed by the campaign and its scheduled time: the same key never sends twice.
        at = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
        run = ["campaign", "run", "invite_leaders", "--at", at]
        _step(console, [*run, "--dry-run"], config)
        _step(console, run, config)
        _step(console, ["campaign", "report", "invite_leaders"], config)
        console.print(
            "(the same run again, as after a crash or from a second scheduler, sends nothing twice:)"
        )
        _step(console, run, config)
        log = sim.save_log(workdir / "simulator-requests.jsonl")
        sent = Counter(m["openid"] for m in sim.sent)
        twice = sum(1 for n in sent.values() if n > 1)
        console.print(
            f"The simulator received {len(sim.requests()):,} requests (saved to {log}) and delivered "
            f"{sum(sent.values()):,} messages to {len(sent):,} followers; followers who got two: {twice}.",
            highlight=False,
        )
    console.print(Rule(style="cyan"))
    console.print(
        f"Explore further (the simulators have stopped; the store stays):\n"
        f"  scrm --config {config} top --by influence\n"
        f"  scrm --config {config} customers --search 138\n"
        f"  scrm --config {config} campaign report invite_leaders --json",
        highlight=False,
    )


def serve_dashboard(workdir: Path, console: Console, *, port: int = 8000) -> None:
    """Serve the demo's store on 127.0.0.1:``port`` (0: any free port) until interrupted (Ctrl-C).

    Creates the dashboard user :data:`DEMO_USER` (role admin) with a random password, then prints the
    dashboard's address, the user and the password (flushed at once, for whoever reads the output).
    """
    from connectors.wechat_sim import BackgroundServer
    from scrm.access import create_user
    from scrm.config import load_settings
    from scrm.store import Store
    from scrm.web.app import create_app

    settings = load_settings(workdir / "config.toml")
    store = Store(settings.database_url)
    try:
        password = secrets.token_urlsafe(12)
        create_user(store, DEMO_USER, password, "admin", actor="demo")
        app = create_app(settings, store=store)
        server = BackgroundServer(app, port=port)
        try:
            bound = server.bind()
        except OSError as exc:
            from scrm.errors import ScrmError

            raise ScrmError(
                f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); pick another --port"
            ) from None
        console.print(Rule("The dashboard", style="bold magenta"))
        console.print(
            f"Dashboard: http://127.0.0.1:{bound}/ (log in as {DEMO_USER}, password {password})\n"
            "Serving the demo's store until Ctrl-C.",
            highlight=False,
        )
        sys.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:  # uvicorn stops serving on Ctrl-C, then raises it again: done
            pass
        finally:
            app.state.bot.close()
    finally:
        store.close()
    console.print("The dashboard has stopped.")


def _top_customer(config: Path) -> int | None:
    """The customer with the highest social value in the latest scores."""
    from graph import top_customers
    from scrm.config import load_settings
    from scrm.store import Store

    store = Store(load_settings(config).database_url)
    try:
        _run, rows = top_customers(store, by="social_value", limit=1)
    finally:
        store.close()
    return int(rows[0]["customer_id"]) if rows else None


def _bot(console: Console, config: Path, sim: object) -> None:
    """Serve the bot, let a few leaders write to it through the simulator, and show the replies."""
    from connectors.wechat_sim import BackgroundServer, SimulatorServer, push_actions
    from scrm.config import load_settings
    from scrm.web.app import create_app

    assert isinstance(sim, SimulatorServer)
    settings = load_settings(config)
    openids = _leader_openids(config, len(MESSAGES))
    with BackgroundServer(create_app(settings)) as bot:
        url = f"{bot.base_url}/wechat/demo"
        console.print(f"scrm serve is answering WeChat callbacks at {url} (safe mode: AES).", highlight=False)
        actions = [sim.act(o, "text", content=text) for o, text in zip(openids, MESSAGES, strict=False)]
        results = push_actions(
            url, actions, token=sim.token, appid=sim.appid, encoding_aes_key=sim.encoding_aes_key, mode="safe"
        )
        for result in results:
            reply = re.search(r"<Content><!\[CDATA\[(.*?)\]\]></Content>", result.reply, re.S)
            said = result.action.content
            answer = reply.group(1) if reply else result.reply or "(no reply)"
            console.print(f"  {result.action.openid[:10]}… wrote {said!r}", highlight=False)
            console.print(f"    bot: {answer.strip()}", highlight=False)
        console.print("(WeChat retries a message it got no answer to; the retry gets the same reply:)")
        again = push_actions(
            url,
            actions[:1],
            token=sim.token,
            appid=sim.appid,
            encoding_aes_key=sim.encoding_aes_key,
            mode="safe",
        )
        same = again[0].reply == results[0].reply
        console.print(f"  retried message answered with the same reply: {same}", highlight=False)


def _leader_openids(config: Path, n: int) -> list[str]:
    """Openids of the first ``n`` community leaders who still follow (they will write to the bot)."""
    from graph import community_report
    from scrm.config import load_settings
    from scrm.store import Store

    settings = load_settings(config)
    appid = settings.accounts["demo"].appid
    store = Store(settings.database_url)
    try:
        _run, communities = community_report(store)
        leaders = [int(person["id"]) for row in communities for person in row["leaders"]]
        return _openids_of(store, leaders, appid)[:n]
    finally:
        store.close()


def _openids_of(store: object, customer_ids: list[int], appid: str) -> list[str]:
    import sqlalchemy as sa

    from scrm.models import Identity
    from scrm.store import Store

    assert isinstance(store, Store)
    t = Identity.__table__  # type: ignore[attr-defined]
    with store.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.customer_id, t.c.value).where(
                t.c.kind == "openid", t.c.scope == appid, t.c.customer_id.in_(customer_ids)
            )
        ).all()
    by_customer = {cid: value for cid, value in rows}
    return [by_customer[c] for c in customer_ids if c in by_customer]
