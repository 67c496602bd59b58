"""The WeChat Official Account connector: :class:`~connectors.base.Connector` over wechatpy.

It talks to ``api_base`` (WeChat itself, or ``scrm simulator``) through wechatpy with only the base
URL changed; :mod:`connectors.wechat_client` bounds token refresh and backs off on rate limits.
Profiles are read 100 at a time (WeChat's limit for ``user/info/batchget``) with up to
``concurrency`` requests in flight, each thread with its own client. Reads through the brand's
tracked share links come from ``share_reads_url`` (a JSON feed, see :meth:`interactions`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar

import httpx
from wechatpy.exceptions import WeChatClientException

from connectors.base import (
    Connector,
    FollowerPage,
    FollowerProfile,
    InteractionPage,
    SendResult,
    ShareRead,
    TagInfo,
)
from connectors.fetching import Fetcher
from connectors.wechat_client import RetryPolicy, WeChatApi
from scrm.config import Settings, SyncSettings, WeChatAccount
from scrm.errors import ConfigError, ConnectorError

__all__ = ["WeChatConnector", "parse_profile"]

#: "clientmsgid exist": a mass send with this clientmsgid was already made
_DUPLICATE_CLIENT_MSG = 45065
#: openids per tags/members/batchtagging call (WeChat's limit)
_TAG_BATCH = 50


def _get_followers(client: Any, *, first: str | None) -> dict[str, Any]:
    result: dict[str, Any] = client.user.get_followers(first)
    return result


def _tag(client: Any, *, tag_id: int, ids: list[str], on: bool) -> None:
    if on:
        client.tag.tag_user(tag_id, ids)
    else:
        client.tag.untag_user(tag_id, ids)


def _post_once(client: Any, *, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST a mass send; "clientmsgid exist" (45065) answers the first send's msg_id: sent once."""
    try:
        result: dict[str, Any] = client.post(endpoint, data=body)
    except WeChatClientException as exc:
        if exc.errcode != _DUPLICATE_CLIENT_MSG or exc.response is None:
            raise
        answer: dict[str, Any] = exc.response.json()
        return {**answer, "duplicate": True}
    return result


def _time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def parse_profile(data: Mapping[str, Any]) -> FollowerProfile:
    """A :class:`FollowerProfile` from one entry of ``user/info`` or ``user/info/batchget``.

    >>> p = parse_profile({"subscribe": 1, "openid": "o1", "subscribe_time": 1700000000,
    ...                    "unionid": "u1", "tagid_list": [2, 100], "subscribe_scene": "ADD_SCENE_QR_CODE",
    ...                    "qr_scene_str": "poster_a"})
    >>> p.subscribe_time.isoformat(), p.tag_ids, p.qr_scene_str
    ('2023-11-14T22:13:20+00:00', (2, 100), 'poster_a')
    >>> parse_profile({"subscribe": 0, "openid": "o2"}).subscribed
    False
    """
    subscribed = bool(data.get("subscribe"))
    return FollowerProfile(
        openid=str(data["openid"]),
        unionid=str(data["unionid"]) if data.get("unionid") else None,
        subscribed=subscribed,
        subscribe_time=_time(data.get("subscribe_time")) if subscribed else None,
        scene=str(data.get("subscribe_scene") or ""),
        qr_scene_str=str(data.get("qr_scene_str") or ""),
        tag_ids=tuple(int(t) for t in data.get("tagid_list") or ()),
        remark=str(data.get("remark") or ""),
    )


class WeChatConnector(Connector):
    """One WeChat Official Account.

    Parameters
    ----------
    account
        The account's settings (appid, secret, api_base, share_reads_url).
    sync
        Concurrency, timeouts and retry bounds (the ``[sync]`` settings).
    """

    platform: ClassVar[str] = "wechat"
    profile_batch_size: ClassVar[int] = 100

    def __init__(self, account: WeChatAccount, sync: SyncSettings | None = None) -> None:
        sync = sync or SyncSettings()
        self.account = account
        self.sync_settings = sync
        self.concurrency = sync.concurrency
        self.api = WeChatApi(
            account.appid,
            account.secret.get_secret_value(),
            api_base=account.api_base,
            policy=RetryPolicy(sync.max_token_refreshes, sync.rate_limit_retries, sync.backoff_seconds),
            timeout=sync.timeout_seconds,
        )
        self.timeout = sync.timeout_seconds
        self._fetcher = Fetcher(concurrency=self.concurrency, timeout=self.timeout, thread_name="scrm-wechat")

    @classmethod
    def from_settings(
        cls, settings: Settings, account_name: str | None = None
    ) -> tuple[str, WeChatConnector]:
        """(config name, connector) of the named WeChat account, or of the only one configured."""
        wechat = {n: a for n, a in settings.accounts.items() if a.platform == "wechat"}
        if account_name is None:
            if len(wechat) != 1:
                where = settings.source or "config.toml"
                raise ConfigError(
                    f"{where}: {'no' if not wechat else len(wechat)} WeChat accounts configured; "
                    + (
                        'add an [accounts.NAME] table with platform = "wechat"'
                        if not wechat
                        else f"name one with --account ({', '.join(sorted(wechat))})"
                    )
                )
            account_name = next(iter(wechat))
        if account_name not in wechat:
            known = ", ".join(sorted(wechat)) or "none"
            raise ConfigError(f"no WeChat account {account_name!r} in the settings (configured: {known})")
        return account_name, cls(wechat[account_name], settings.sync)

    def close(self) -> None:
        self._fetcher.close()
        self.api.close()

    def fresh_copy(self) -> WeChatConnector:
        """The same account with its own connections and threads, starting from this one's token."""
        copy = WeChatConnector(self.account, self.sync_settings)
        copy.api.keeper.adopt(self.api.keeper)
        return copy

    # -- reading ----------------------------------------------------------------------------------

    def followers(self, cursor: str | None = None) -> Iterator[FollowerPage]:
        """Pages of ``user/get`` (10,000 openids each), from the start or after ``cursor``."""
        while True:
            data = self.api.call("user/get", partial(_get_followers, first=cursor))
            ids = tuple(data.get("data", {}).get("openid", ())) if "data" in data else ()
            next_openid = data.get("next_openid") or None
            last = not ids or not next_openid
            yield FollowerPage(ids, None if last else next_openid, int(data.get("total", 0)))
            if last:
                return
            cursor = next_openid

    def _fetch_profiles(self, ids: list[str]) -> list[FollowerProfile]:
        users = [{"openid": openid, "lang": "zh_CN"} for openid in ids]
        result = self.api.call("user/info/batchget", lambda c: c.user.get_batch(users))
        return [parse_profile(item) for item in result]

    def profiles(self, ids: Sequence[str]) -> Iterator[list[FollowerProfile]]:
        """``user/info/batchget`` 100 at a time, up to ``concurrency`` in flight, in order."""
        size = self.profile_batch_size
        yield from self._fetcher.in_order(self._fetch_profiles, ids, size)

    def tags(self) -> list[TagInfo]:
        """``tags/get``."""
        result = self.api.call("tags/get", lambda c: c.tag.get())
        return [TagInfo(int(t["id"]), str(t["name"]), int(t.get("count", 0))) for t in result]

    def interactions(self, cursor: str = "", *, limit: int = 5000) -> Iterator[InteractionPage]:
        """Reads through tracked share links: ``GET share_reads_url?cursor=C&limit=L``.

        The feed answers ``{"reads": [{"id", "article", "sharer", "reader", "time"}], "next_cursor",
        "has_more"}``. Nothing is yielded when the account has no ``share_reads_url``.
        """
        url = self.account.share_reads_url
        if not url:
            return
        while True:
            try:
                response = self._fetcher.http.get(url, params={"cursor": cursor, "limit": limit})
                response.raise_for_status()
                data = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise ConnectorError(f"share reads feed {url}: {type(exc).__name__}: {exc}") from None
            reads = tuple(
                ShareRead(
                    id=str(r["id"]),
                    sharer=str(r["sharer"]),
                    reader=str(r["reader"]),
                    article=str(r.get("article", "")),
                    time=datetime.fromtimestamp(int(r["time"]), UTC),
                )
                for r in data.get("reads", ())
            )
            next_cursor = str(data.get("next_cursor") or cursor)
            has_more = bool(data.get("has_more")) and next_cursor != cursor
            yield InteractionPage(reads, next_cursor, has_more)
            if not has_more:
                return
            cursor = next_cursor

    # -- sending ----------------------------------------------------------------------------------

    def send_text(self, recipient: str, text: str) -> SendResult:
        """``message/custom/send`` (a customer-service message)."""
        result = self.api.call(
            "message/custom/send", lambda c: c.message.send_text(user_id=recipient, content=text)
        )
        return SendResult(str(result.get("msgid", "")), 1, result)

    def send_template(
        self, recipient: str, template_id: str, data: Mapping[str, str], url: str | None = None
    ) -> SendResult:
        """``message/template/send``; values of ``data`` become ``{"value": ...}`` fields."""
        fields = {key: {"value": value} for key, value in data.items()}
        result = self.api.call(
            "message/template/send",
            lambda c: c.message.send_template(
                user_id=recipient, template_id=template_id, data=fields, url=url
            ),
        )
        return SendResult(str(result.get("msgid", "")), 1, result)

    def send_mass_text(
        self,
        text: str,
        *,
        recipients: Sequence[str] | None = None,
        tag_id: int | None = None,
        client_msg_id: str,
    ) -> SendResult:
        """``message/mass/send`` (a list of openids) or ``message/mass/sendall`` (a tag, or everyone)."""
        body: dict[str, Any] = {"msgtype": "text", "text": {"content": text}, "clientmsgid": client_msg_id}
        if recipients is not None:
            if tag_id is not None:
                raise ValueError("give recipients or tag_id, not both")
            endpoint, count = "message/mass/send", len(recipients)
            body["touser"] = list(recipients)
        else:
            endpoint, count = "message/mass/sendall", 0
            body["filter"] = {
                "is_to_all": tag_id is None,
                **({"tag_id": tag_id} if tag_id is not None else {}),
            }
        result = self.api.call(endpoint, partial(_post_once, endpoint=endpoint, body=body))
        return SendResult(str(result.get("msg_id", "")), count, result)

    # -- tags -------------------------------------------------------------------------------------

    def create_tag(self, name: str) -> TagInfo:
        """``tags/create``."""
        result = self.api.call("tags/create", lambda c: c.tag.create(name))
        return TagInfo(int(result["id"]), str(result["name"]))  # wechatpy answers the "tag" object

    def tag_followers(self, tag_id: int, ids: Sequence[str]) -> None:
        """``tags/members/batchtagging``, 50 openids a call."""
        for i in range(0, len(ids), _TAG_BATCH):
            chunk = list(ids[i : i + _TAG_BATCH])
            self.api.call("tags/members/batchtagging", partial(_tag, tag_id=tag_id, ids=chunk, on=True))

    def untag_followers(self, tag_id: int, ids: Sequence[str]) -> None:
        """``tags/members/batchuntagging``, 50 openids a call."""
        for i in range(0, len(ids), _TAG_BATCH):
            chunk = list(ids[i : i + _TAG_BATCH])
            self.api.call("tags/members/batchuntagging", partial(_tag, tag_id=tag_id, ids=chunk, on=False))
