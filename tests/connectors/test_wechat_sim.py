"""The WeChat simulator driven by wechatpy's own WeChatClient over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from connectors.wechat_sim import SimulatorServer


def client_for(sim: SimulatorServer, *, secret: str | None = None) -> WeChatClient:
    """wechatpy's client, unchanged except for its base URL and token URL."""
    base = sim.base_url

    class SimClient(WeChatClient):  # type: ignore[misc]
        API_BASE_URL = base + "/cgi-bin/"

        def fetch_access_token(self) -> Any:
            params = {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret}
            return self._fetch_access_token(url=base + "/cgi-bin/token", params=params)

    return SimClient(sim.credentials.appid, secret or sim.credentials.secret, auto_retry=False)


def test_followers_and_profiles(wechat_sim: SimulatorServer) -> None:
    client = client_for(wechat_sim)
    openids = list(client.user.iter_followers())
    expected = int(wechat_sim.population.subscribed_mask(wechat_sim.clock.timestamp()).sum())
    assert len(openids) == len(set(openids)) == expected
    profiles = client.user.get_batch(openids[:100])
    assert [p["openid"] for p in profiles] == openids[:100]
    assert all(p["subscribe"] == 1 and "nickname" not in p for p in profiles)


def test_wrong_secret(wechat_sim: SimulatorServer) -> None:
    with pytest.raises(WeChatClientException) as info:
        client_for(wechat_sim, secret="0" * 32).user.get_followers()
    assert info.value.errcode == 40125
