"""The same connector-interface suite over every platform's connector, each against its simulator.

What every :class:`connectors.base.Connector` promises: follower pages of unique ids,
each ``next_cursor`` resuming exactly after its page; profiles in the order asked, in batches of at
most ``profile_batch_size``; tags and interaction pages of the declared types; errors only from
:mod:`scrm.errors`; ``close`` twice is harmless.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from connectors.base import Connector, FollowerPage, InteractionPage, TagInfo
from connectors.mastodon import MastodonConnector
from connectors.mastodon_sim import MastodonSimServer, generate_population
from connectors.wechat import WeChatConnector
from connectors.wechat_sim import SimulatorServer
from connectors.wechat_sim import generate_population as wechat_population
from scrm.config import MastodonAccount, SyncSettings, WeChatAccount
from scrm.errors import ConnectorError, ScrmError

SYNC = SyncSettings(backoff_seconds=0.01)
HAVE_WECOM = all(
    importlib.util.find_spec(m) is not None for m in ("connectors.wecom", "connectors.wecom_sim")
)


def _wechat() -> Iterator[Connector]:
    appid, secret = "wx00000000brand1", "s3cret-value-never-printed"
    with SimulatorServer(wechat_population(followers=250, seed=3), appid=appid, secret=secret) as sim:
        account = WeChatAccount(
            platform="wechat", appid=appid, secret=SecretStr(secret), api_base=sim.base_url
        )
        with WeChatConnector(account, SYNC) as connector:
            yield connector


def _wecom() -> Iterator[Connector]:
    from connectors.wecom import WeComConnector
    from connectors.wecom_sim import WeComSimulator, generate_wecom_population
    from scrm.config import WeComAccount

    with WeComSimulator(generate_wecom_population(120, seed=3)) as sim:
        account = WeComAccount(
            platform="wecom", corpid=sim.corpid, secret=SecretStr(sim.secret), api_base=sim.base_url
        )
        with WeComConnector(account, SYNC) as connector:
            yield connector


def _mastodon() -> Iterator[Connector]:
    with MastodonSimServer(generate_population(170, seed=3)) as sim:
        account = MastodonAccount(
            platform="mastodon",
            api_base_url=sim.base_url,
            access_token=SecretStr(sim.token),
            handle="brand@social.example",
        )
        with MastodonConnector(account, SYNC) as connector:
            yield connector


@pytest.fixture(
    params=[
        "wechat",
        pytest.param(
            "wecom",
            marks=pytest.mark.skipif(
                not HAVE_WECOM, reason="connectors/wecom.py has not landed in this tree"
            ),
        ),
        "mastodon",
    ]
)
def connector(request: pytest.FixtureRequest) -> Iterator[Connector]:
    yield from {"wechat": _wechat, "wecom": _wecom, "mastodon": _mastodon}[request.param]()


def test_follower_pages_are_unique_and_resume_after_each_page(connector: Connector) -> None:
    pages = list(connector.followers())
    assert pages and all(isinstance(p, FollowerPage) for p in pages)
    ids = [i for p in pages for i in p.ids]
    # unique within a page (WeCom pages per staff member: one contact of two staff is on two pages)
    assert ids and all(len(p.ids) == len(set(p.ids)) for p in pages)
    assert pages[-1].next_cursor is None
    for k, page in enumerate(pages[:-1]):
        assert page.next_cursor is not None
        rest = [i for p in connector.followers(page.next_cursor) for i in p.ids]
        assert rest == [i for p in pages[k + 1 :] for i in p.ids]


def test_profiles_come_in_order_in_bounded_batches(connector: Connector) -> None:
    ids = [i for p in connector.followers() for i in p.ids][:95]
    batches = list(connector.profiles(ids))
    assert all(0 < len(b) <= connector.profile_batch_size for b in batches)
    assert [p.openid for b in batches for p in b] == ids


def test_tags_interactions_and_lifetime(connector: Connector) -> None:
    assert all(isinstance(t, TagInfo) for t in connector.tags())
    pages = []
    try:
        for page in connector.interactions():
            pages.append(page)
            if len(pages) == 2:
                break
    except ScrmError as exc:  # a platform without a configured feed says so with one of ours
        assert isinstance(exc, ConnectorError)
    assert all(isinstance(p, InteractionPage) for p in pages)
    assert isinstance(connector.platform, str) and connector.platform
    connector.close()
    connector.close()
