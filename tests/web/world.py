"""A scored store served by the whole web app, with an API token per role: the web tests' world.

:func:`build_world` syncs the WeChat simulator's followers into a fresh store, imports the shop's
orders for them, rescores, writes a ``config.toml`` (with a ``[campaigns] folder`` holding a copy of
the repository's ``campaigns.d``) and serves :func:`scrm.web.create_app` under uvicorn in a thread.
``world.client(role)`` is an :class:`httpx.Client` on ``/api/v1`` with that role's bearer token.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from campaigns.campaign import find_campaign
from campaigns.runner import RunResult, run_campaign
from connectors.follower_sync import sync_wechat
from connectors.sync import import_purchases
from connectors.wechat import WeChatConnector
from connectors.wechat_sim import Population, SimulatorServer
from connectors.wechat_sim.serving import BackgroundServer
from graph.pipeline import rescore
from scrm.access import create_token
from scrm.config import Settings, load_settings
from scrm.store import Store
from scrm.web import create_app
from tests.web.bot_env import RULES

REPO = Path(__file__).resolve().parents[2]
ROLES = ("admin", "marketer", "viewer")


@dataclass
class WebWorld:
    """The store, settings, simulator and running app of a web test, and one API token per role."""

    store: Store
    settings: Settings
    sim: SimulatorServer
    config: Path
    folder: Path
    orders_csv: Path
    now: datetime
    server_url: str
    tokens: dict[str, str]
    _clients: list[httpx.Client] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        """The API's root: ``http://HOST:PORT/api/v1``."""
        return self.server_url + "/api/v1"

    def client(self, role: str | None = "admin", *, token: str | None = None) -> httpx.Client:
        """A client on the API as ``role`` (``None``: no credentials; ``token``: that token instead)."""
        headers = {}
        bearer = token if token is not None else (self.tokens[role] if role else None)
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        client = httpx.Client(base_url=self.base_url, headers=headers, timeout=30.0)
        self._clients.append(client)
        return client

    def run_campaign(self, name: str) -> RunResult:
        """Run the campaign ``name`` of the folder for real against the simulator, at the world's time."""
        campaign = find_campaign(self.folder, name)
        _, connector = WeChatConnector.from_settings(self.settings)
        with connector:
            return run_campaign(
                self.store, self.settings, campaign, connector, clock=lambda: self.now, sleep=lambda _s: None
            )

    def count(self, table: str, where: str = "", **params: Any) -> int:
        """Rows of ``table`` (the name and condition come from the test, values are bound)."""
        with self.store.connect() as conn:
            query = sa.text(f"SELECT count(*) FROM {table} {where}")
            return int(conn.execute(query, params).scalar_one())

    def close_clients(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()


def write_config(path: Path, database_url: str, sim: SimulatorServer, folder: Path) -> Path:
    """A config.toml for the simulator's account ``brand`` (with bot rules) and a campaigns folder."""
    path.write_text(
        f"""
[database]
url = "{database_url}"

[campaigns]
folder = "{folder}"
backoff_seconds = 0.0

[sync]
backoff_seconds = 0.0
rate_limit_retries = 1

[import]
batch_size = 100

[accounts.brand]
platform = "wechat"
appid = "{sim.appid}"
secret = "{sim.secret}"
token = "{sim.token}"
encoding_aes_key = "{sim.encoding_aes_key}"
api_base = "{sim.base_url}"
share_reads_url = "{sim.share_reads_url}"
{RULES}
""",
        encoding="utf-8",
    )
    return path


@contextmanager
def build_world(database_url: str, tmp: Path, population: Population) -> Iterator[WebWorld]:
    """Sync, import, score and serve a world in ``tmp`` on ``database_url``; stop it afterwards."""
    with ExitStack() as stack:
        sim = stack.enter_context(SimulatorServer(population))
        store = Store(database_url)
        stack.callback(store.close)
        store.upgrade()
        folder = tmp / "campaigns.d"
        shutil.copytree(REPO / "campaigns.d", folder)
        config = write_config(tmp / "config.toml", database_url, sim, folder)
        settings = load_settings(config, environ={})
        now = sim.clock.now()
        sync_wechat(store, settings, now=now)
        orders = population.write_orders_csv(tmp / "orders.csv", account="brand", until=int(now.timestamp()))
        import_purchases(store, settings, orders)
        rescore(store, settings, now=now)
        tokens = {role: create_token(store, f"test-{role}", role) for role in ROLES}
        app = create_app(settings, store=store)
        stack.callback(app.state.bot.close)
        server = stack.enter_context(BackgroundServer(app))
        world = WebWorld(store, settings, sim, config, folder, orders, now, server.base_url, tokens)
        stack.callback(world.close_clients)
        yield world
