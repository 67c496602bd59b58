"""A bot under test: config.toml for a simulator's account, the app served by uvicorn in a thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from connectors.wechat_sim import SimulatorServer
from connectors.wechat_sim.serving import BackgroundServer
from scrm.config import Settings, load_settings
from scrm.store import Store
from scrm.web import create_app

RULES = """
[bot.rules.welcome]
match = "subscribe"
template = "welcome.txt.j2"

[bot.rules.help]
match = "exact"
keywords = ["help", "?"]
template = "help.txt.j2"
priority = 10

[bot.rules.news]
match = "click"
key = "MENU_NEWS"

[[bot.rules.news.articles]]
title = "This week at {{ channel or 'our stores' }}"
url = "https://example.com/w?o={{ openid }}"

[bot.rules.fallback]
match = "default"
template = "default.txt.j2"
priority = -100
"""


def write_config(
    tmp_path: Path, database_url: str, sim: SimulatorServer, *, rules: str = RULES, bot: str = ""
) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[database]
url = "{database_url}"

[bot]
max_body_bytes = 4096
{bot}

[accounts.brand]
platform = "wechat"
appid = "{sim.appid}"
secret = "{sim.secret}"
token = "{sim.token}"
encoding_aes_key = "{sim.encoding_aes_key}"
api_base = "{sim.base_url}"
{rules}
""",
        encoding="utf-8",
    )
    return path


@contextmanager
def running_bot(
    settings: Settings, store: Store, *, template_globals: dict[str, Callable[..., Any]] | None = None
) -> Iterator[str]:
    """Serve the app; yield the callback URL of account ``brand``."""
    app = create_app(settings, store=store, template_globals=template_globals)
    try:
        with BackgroundServer(app) as server:
            yield server.base_url + "/wechat/brand"
    finally:
        app.state.bot.close()


def load(path: Path) -> Settings:
    return load_settings(path, environ={})


def count(store: Store, table: str, where: str = "") -> int:
    """Rows of ``table`` (the name comes from the test, never from data)."""
    with store.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table} {where}")).scalar_one())
