"""WeCom groups for the demo: a simulated corp whose contacts share the Official Account's unionids."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import SecretStr

from connectors.wecom_sim.population import generate_wecom_population
from connectors.wecom_sim.server import WeComSimulator
from connectors.wecom_sync import WeComSyncReport, sync_wecom
from scrm.config import Settings, WeComAccount
from scrm.store import Store

__all__ = ["sync_demo_corp"]


def sync_demo_corp(
    store: Store,
    settings: Settings,
    unionids: Iterable[str | None],
    *,
    contacts: int = 2000,
    seed: int = 7,
    account: str = "corp",
) -> WeComSyncReport:
    """Generate a corp, serve it on 127.0.0.1 for the time of one ``scrm sync wecom``, and sync it.

    ``unionids`` (e.g. ``wechat_population.unionids``; None entries are skipped) go to the first
    contacts, so the people of the Official Account and of the corp's groups meet on them. The corp
    is added to ``settings`` as account ``account`` for this sync only (``scrm sync wecom`` against
    the real platform needs it in config.toml).
    """
    corp = generate_wecom_population(contacts, unionids=[u for u in unionids if u], seed=seed)
    with WeComSimulator(corp) as sim:
        wecom = WeComAccount(
            platform="wecom",
            corpid=sim.corpid,
            secret=SecretStr(sim.secret),
            api_base=sim.base_url,
            events_url=sim.events_url,
            display_name="Demo corp (simulated)",
        )
        with_corp = settings.model_copy(update={"accounts": {**settings.accounts, account: wecom}})
        return sync_wecom(store, with_corp, account, now=sim.clock.now())
