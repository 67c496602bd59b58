"""wechatpy's own client pointed at a simulator (only its base URL and token URL changed)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from connectors.wechat_sim import SimulatorServer


def client_for(
    sim: SimulatorServer,
    *,
    appid: str | None = None,
    secret: str | None = None,
    access_token: str | None = None,
) -> WeChatClient:
    """A WeChatClient against ``sim`` with ``auto_retry=False`` (errors surface as they come)."""
    base = sim.base_url

    class SimClient(WeChatClient):  # type: ignore[misc]
        API_BASE_URL = base + "/cgi-bin/"

        def fetch_access_token(self) -> Any:
            params = {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret}
            return self._fetch_access_token(url=base + "/cgi-bin/token", params=params)

    return SimClient(appid or sim.appid, secret or sim.secret, access_token=access_token, auto_retry=False)


def raw_call(sim: SimulatorServer, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """One plain HTTP call to ``/cgi-bin/<path>`` (for what wechatpy cannot send, e.g. no token)."""
    answer = httpx.request(method, sim.base_url + "/cgi-bin/" + path, **kwargs)
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()
    return result


def fresh_token(sim: SimulatorServer) -> str:
    params = {"grant_type": "client_credential", "appid": sim.appid, "secret": sim.secret}
    token: str = raw_call(sim, "GET", "token", params=params)["access_token"]
    return token


def errcode_of(call: Any, *args: Any, **kwargs: Any) -> int | None:
    """The errcode of the WeChatClientException that ``call(*args, **kwargs)`` raises."""
    with pytest.raises(WeChatClientException) as info:
        call(*args, **kwargs)
    code: int | None = info.value.errcode
    return code
