"""A synced and scored store beside a running WeChat simulator, and a campaigns folder, per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from campaigns.campaign import Campaign, load_campaign
from campaigns.runner import RunResult, run_campaign
from connectors.follower_sync import sync_wechat
from connectors.wechat import WeChatConnector
from connectors.wechat_sim import SimulatorServer
from graph.pipeline import rescore
from scrm.config import Settings, load_settings
from scrm.models import Identity
from scrm.store import Store


@dataclass
class World:
    """The store, its settings, the simulator, the campaigns folder and the time campaigns run at."""

    store: Store
    settings: Settings
    sim: SimulatorServer
    folder: Path
    config: Path
    now: datetime

    def campaign(self, name: str, text: str) -> Campaign:
        path = self.folder / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        return load_campaign(path)

    def template(self, name: str, text: str) -> None:
        (self.folder / name).write_text(text, encoding="utf-8")

    def run(self, campaign: Campaign, **kwargs: object) -> RunResult:
        kwargs.setdefault("clock", lambda: self.now)
        kwargs.setdefault("sleep", lambda _s: None)
        if kwargs.pop("dry_run", False):
            return run_campaign(self.store, self.settings, campaign, None, dry_run=True, **kwargs)  # type: ignore[arg-type]
        _, connector = WeChatConnector.from_settings(self.settings)
        with connector:
            return run_campaign(self.store, self.settings, campaign, connector, **kwargs)  # type: ignore[arg-type]

    def openids(self) -> dict[int, str]:
        """customer id -> openid on the simulated account."""
        t = Identity.__table__  # type: ignore[attr-defined]
        with self.store.connect() as conn:
            rows = conn.execute(sa.select(t.c.customer_id, t.c.value).where(t.c.kind == "openid")).all()
        return {cid: openid for cid, openid in rows}

    def sent_to(self, kind: str | None = None) -> list[str]:
        return [m["openid"] for m in self.sim.sent if kind is None or m["kind"] == kind]


def write_config(
    path: Path, database_url: str, sim: SimulatorServer, folder: Path, **campaigns: object
) -> Path:
    options = {"backoff_seconds": 0.0, **campaigns}
    lines = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in options.items())
    path.write_text(
        f"""
[database]
url = "{database_url}"

[campaigns]
folder = "{folder}"
{lines}

[sync]
backoff_seconds = 0.0
rate_limit_retries = 1

[accounts.brand]
platform = "wechat"
appid = "{sim.appid}"
secret = "{sim.secret}"
api_base = "{sim.base_url}"
share_reads_url = "{sim.share_reads_url}"
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def make_world(
    store: Store, wechat_sim: SimulatorServer, database_url: str, tmp_path: Path
) -> Iterator[Callable[..., World]]:
    """Build the world: followers synced from the simulator, scored; extra [campaigns] settings."""

    def make(**campaigns: object) -> World:
        folder = tmp_path / "campaigns.d"
        folder.mkdir(exist_ok=True)
        config = write_config(tmp_path / "config.toml", database_url, wechat_sim, folder, **campaigns)
        settings = load_settings(config)
        now = wechat_sim.clock.now()
        sync_wechat(store, settings, now=now)
        rescore(store, settings, now=now)
        return World(store, settings, wechat_sim, folder, config, now)

    yield make


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()
