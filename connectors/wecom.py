"""The WeCom (企业微信) connector: external contacts and customer groups through wechatpy.

wechatpy's WeCom client (``wechatpy.enterprise.WeChatClient`` in 1.8) is used with only its base URL
and token URL changed; endpoints it lacks (``externalcontact/batch/get_by_user``,
``externalcontact/groupchat/list|get``) go through its own ``get``/``post`` helpers. Token refresh is
bounded and rate limits back off exactly as for the Official Account: the same
:class:`~connectors.wechat_client.WeChatApi`, given this platform's client class and errcodes.

Followers are the corp's external contacts: :meth:`WeComConnector.followers` pages through each
permitted staff member's contact list, :meth:`profiles` reads ``externalcontact/get``. The richer
reads of :class:`~connectors.base.GroupConnector` feed :mod:`connectors.wecom_sync`. Sending through
WeCom (group messages need a staff member to confirm them on the phone) is not supported.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar, TypeVar
from urllib.request import getproxies

import httpx
from wechatpy.enterprise import WeChatClient as WorkClient

from connectors.base import (
    ContactEvent,
    ContactEventPage,
    ContactFollow,
    ContactPage,
    ExternalContact,
    FollowerPage,
    FollowerProfile,
    GroupConnector,
    GroupInfo,
    GroupMember,
    GroupPage,
    InteractionPage,
    ReadOnlyConnector,
    TagInfo,
)
from connectors.fetching import Fetcher
from connectors.wechat_client import ERRORS, RetryPolicy, WeChatApi
from scrm.config import Settings, SyncSettings, WeComAccount
from scrm.errors import ConfigError, ConnectorError, RateLimited, RecipientRefused, TokenRejected

__all__ = ["WECOM_ERRORS", "WeComConnector", "parse_group"]

T = TypeVar("T")
#: WeCom's errcodes -> (scrm exception, what to do); the Official Account's where they agree
WECOM_ERRORS: dict[int, tuple[type[ConnectorError], str]] = {
    **ERRORS,
    40001: (TokenRejected, "the secret is not valid: check the corp's customer-contact secret"),
    40013: (TokenRejected, "the corpid is not valid: check the account's corpid in config.toml"),
    40014: (TokenRejected, "the access token is not valid"),
    45009: (RateLimited, "WeCom's frequency limit was reached: retry later"),
    60011: (ConnectorError, "no privilege: the app's visible range does not include this staff member"),
    60111: (RecipientRefused, "no such staff userid in the corp"),
    84061: (RecipientRefused, "not an external contact of any staff member"),
    40050: (RecipientRefused, "no such customer group (chat_id)"),
}
#: staff userids per externalcontact/batch/get_by_user call, and contacts per page (WeCom's limits)
_STAFF_BATCH, _CONTACT_PAGE, _GROUP_PAGE = 100, 100, 1000


class _WorkClient(WorkClient):  # type: ignore[misc]
    """wechatpy's WeCom client against ``api_base``, taking its token from the shared keeper."""

    def __init__(self, api: WeChatApi) -> None:
        super().__init__(api.appid, api.secret, timeout=api.timeout, auto_retry=False)
        self.API_BASE_URL = api.api_base + "/cgi-bin/"
        self._token_url = api.api_base + "/cgi-bin/gettoken"
        self._keeper = api.keeper
        self._http.trust_env = False  # proxies read once, as connectors.wechat_client._Client does
        self._http.proxies = getproxies()

    @property
    def access_token(self) -> str:
        return self._keeper.token(self)

    def fetch_access_token(self) -> dict[str, Any]:
        result: dict[str, Any] = self._fetch_access_token(
            url=self._token_url, params={"corpid": self.corp_id, "corpsecret": self.secret}
        )
        return result


def _time(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def _post(client: Any, *, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = client.post(endpoint, data=body)
    return result


def parse_group(data: Mapping[str, Any]) -> GroupInfo:
    """A :class:`GroupInfo` from ``externalcontact/groupchat/get``'s ``group_chat``.

    >>> g = parse_group({"chat_id": "wr1", "name": "会员群", "owner": "ZhangSan", "create_time": 1572505490,
    ...     "member_list": [{"userid": "ZhangSan", "type": 1, "join_time": 1572505491, "join_scene": 1},
    ...                     {"userid": "wm1", "type": 2, "join_time": 1572505492, "join_scene": 1,
    ...                      "unionid": "u1", "invitor": {"userid": "ZhangSan"}}]})
    >>> [(m.id, m.is_customer, m.invitor) for m in g.members]
    [('ZhangSan', False, ''), ('wm1', True, 'ZhangSan')]
    """
    members = tuple(
        GroupMember(
            id=str(m["userid"]),
            is_customer=int(m.get("type", 1)) == 2,
            joined_at=_time(m.get("join_time") or data.get("create_time") or 0),
            join_scene=int(m.get("join_scene") or 0),
            unionid=str(m["unionid"]) if m.get("unionid") else None,
            invitor=str((m.get("invitor") or {}).get("userid") or ""),
        )
        for m in data.get("member_list") or ()
    )
    return GroupInfo(
        id=str(data["chat_id"]),
        name=str(data.get("name") or ""),
        owner=str(data.get("owner") or ""),
        created_at=_time(data.get("create_time") or 0),
        members=members,
    )


def _contact(entry: Mapping[str, Any], follows: Sequence[Mapping[str, Any]]) -> ExternalContact:
    return ExternalContact(
        id=str(entry["external_userid"]),
        name=str(entry.get("name") or ""),
        unionid=str(entry["unionid"]) if entry.get("unionid") else None,
        follows=tuple(
            ContactFollow(
                staff=str(f["userid"]),
                added_at=_time(f.get("createtime") or 0),
                add_way=int(f.get("add_way") or 0),
                state=str(f.get("state") or ""),
            )
            for f in follows
        ),
    )


class WeComConnector(GroupConnector, ReadOnlyConnector):
    """One WeCom corp, read with its customer-contact secret.

    Parameters
    ----------
    account
        The account's settings (corpid, secret, api_base, events_url).
    sync
        Concurrency, timeouts and retry bounds (the ``[sync]`` settings).
    """

    platform: ClassVar[str] = "wecom"
    read_only_reason: ClassVar[str] = (
        "WeCom group messages need a staff member's confirmation; send through the Official Account"
    )
    profile_batch_size: ClassVar[int] = 100

    def __init__(self, account: WeComAccount, sync: SyncSettings | None = None) -> None:
        sync = sync or SyncSettings()
        self.account = account
        self.concurrency = sync.concurrency
        self.timeout = sync.timeout_seconds
        self.api = WeChatApi(
            account.corpid,
            account.secret.get_secret_value(),
            api_base=account.api_base,
            policy=RetryPolicy(sync.max_token_refreshes, sync.rate_limit_retries, sync.backoff_seconds),
            timeout=sync.timeout_seconds,
            client_factory=_WorkClient,
            errors=WECOM_ERRORS,
            label="WeCom",
        )
        self._fetcher = Fetcher(concurrency=self.concurrency, timeout=self.timeout, thread_name="scrm-wecom")

    @classmethod
    def from_settings(cls, settings: Settings, account_name: str | None = None) -> tuple[str, WeComConnector]:
        """(config name, connector) of the named WeCom account, or of the only one configured."""
        corps = {n: a for n, a in settings.accounts.items() if isinstance(a, WeComAccount)}
        if account_name is None and len(corps) == 1:
            account_name = next(iter(corps))
        if account_name is None or account_name not in corps:
            where = settings.source or "config.toml"
            known = ", ".join(sorted(corps)) or 'none: add an [accounts.NAME] table with platform = "wecom"'
            what = "name one with --account" if account_name is None else f"no WeCom account {account_name!r}"
            raise ConfigError(f"{where}: {what} (WeCom accounts configured: {known})")
        return account_name, cls(corps[account_name], settings.sync)

    def close(self) -> None:
        self._fetcher.close()
        self.api.close()

    # -- staff and contacts ------------------------------------------------------------------------

    def staff(self) -> list[str]:
        """``user/simplelist`` of the root department with its children: every staff userid."""
        result = self.api.call(
            "user/simplelist",
            lambda c: c.get("user/simplelist", params={"department_id": 1, "fetch_child": 1}),
        )
        return [str(u["userid"]) for u in result.get("userlist", ())]

    def contact_staff(self) -> list[str]:
        """``externalcontact/get_follow_user_list``: staff members allowed to have external contacts."""
        result = self.api.call(
            "externalcontact/get_follow_user_list", lambda c: c.external_contact.get_follow_user_list()
        )
        return [str(u) for u in result.get("follow_user", ())]

    def contacts(self, cursor: str | None = None) -> Iterator[ContactPage]:
        """``externalcontact/batch/get_by_user``: 100 staff members a call, 100 contacts a page.

        The cursor is ``"<staff batch>:<WeCom cursor>"`` over :meth:`contact_staff` in its order.
        """
        staff = self.contact_staff()
        batch, _, inner = (cursor or "0:").partition(":")
        for start in range(int(batch or 0) * _STAFF_BATCH, len(staff), _STAFF_BATCH):
            users = staff[start : start + _STAFF_BATCH]
            while True:
                body = {"userid_list": users, "cursor": inner, "limit": _CONTACT_PAGE}
                data = self.api.call(
                    "externalcontact/batch/get_by_user",
                    partial(_post, endpoint="externalcontact/batch/get_by_user", body=body),
                )
                items = tuple(
                    _contact(e["external_contact"], [e["follow_info"]])
                    for e in data.get("external_contact_list", ())
                )
                inner = str(data.get("next_cursor") or "")
                index = start // _STAFF_BATCH
                if inner:
                    yield ContactPage(items, f"{index}:{inner}")
                    continue
                last = start + _STAFF_BATCH >= len(staff)
                yield ContactPage(items, None if last else f"{index + 1}:")
                break

    def followers(self, cursor: str | None = None) -> Iterator[FollowerPage]:
        """One page per permitted staff member (``externalcontact/list``); cursor: the next userid.

        A contact whom several staff members have is on each of their pages.
        """
        staff = self.contact_staff()
        start = staff.index(cursor) if cursor in staff else 0
        for k in range(start, len(staff)):
            data = self.api.call(
                "externalcontact/list", partial(lambda c, u: c.external_contact.list(u), u=staff[k])
            )
            ids = tuple(str(i) for i in data.get("external_userid", ()))
            yield FollowerPage(ids, staff[k + 1] if k + 1 < len(staff) else None, len(ids))

    def _profile(self, external_userid: str) -> FollowerProfile:
        try:
            data = self.api.call("externalcontact/get", lambda c: c.external_contact.get(external_userid))
        except RecipientRefused:
            return FollowerProfile(external_userid, None, False, None)
        contact = _contact(data["external_contact"], data.get("follow_user") or ())
        first = min(contact.follows, key=lambda f: f.added_at, default=None)
        return FollowerProfile(
            openid=contact.id,
            unionid=contact.unionid,
            subscribed=first is not None,
            subscribe_time=first.added_at if first else None,
            scene=f"add_way_{first.add_way}" if first else "",
            qr_scene_str=first.state if first else "",
        )

    def profiles(self, ids: Sequence[str]) -> Iterator[list[FollowerProfile]]:
        """``externalcontact/get`` per contact (WeCom has no batch profile call), in order."""
        return self._fetcher.in_order(lambda chunk: [self._profile(i) for i in chunk], ids, 10)

    # -- groups ------------------------------------------------------------------------------------

    def groups(self, cursor: str | None = None, *, status_filter: int = 0) -> Iterator[GroupPage]:
        """``externalcontact/groupchat/list``, 1,000 group ids a page."""
        while True:
            body: dict[str, Any] = {"status_filter": status_filter, "limit": _GROUP_PAGE}
            if cursor:
                body["cursor"] = cursor
            data = self.api.call(
                "externalcontact/groupchat/list",
                partial(_post, endpoint="externalcontact/groupchat/list", body=body),
            )
            ids = tuple(str(g["chat_id"]) for g in data.get("group_chat_list", ()))
            cursor = str(data.get("next_cursor") or "") or None
            yield GroupPage(ids, cursor)
            if cursor is None:
                return

    def _group(self, chat_id: str) -> GroupInfo | None:
        try:
            data = self.api.call(
                "externalcontact/groupchat/get",
                partial(_post, endpoint="externalcontact/groupchat/get", body={"chat_id": chat_id}),
            )
        except RecipientRefused:
            return None  # dismissed since it was listed
        return parse_group(data["group_chat"])

    def group_details(self, ids: Sequence[str]) -> Iterator[list[GroupInfo]]:
        """``externalcontact/groupchat/get`` per group, ``concurrency`` in flight, in order."""

        def fetch(chunk: list[str]) -> list[GroupInfo]:
            return [g for g in map(self._group, chunk) if g is not None]

        return self._fetcher.in_order(fetch, ids, 10)

    def contact_events(self, cursor: str = "", *, limit: int = 5000) -> Iterator[ContactEventPage]:
        """Contact deletions from ``events_url`` (``GET events_url?cursor=C&limit=L``).

        The feed answers ``{"events": [{"id", "change_type", "userid", "external_userid", "time"}],
        "next_cursor", "has_more"}``: ``del_external_contact`` (a staff member deleted the customer)
        and ``del_follow_user`` (the customer deleted the staff member), as WeCom's callback
        ``change_external_contact`` names them. Nothing is yielded without an ``events_url``.
        """
        url = self.account.events_url
        if not url:
            return
        kinds = {
            "del_external_contact": "staff_deleted_customer",
            "del_follow_user": "customer_deleted_staff",
        }
        while True:
            try:
                response = self._fetcher.http.get(url, params={"cursor": cursor, "limit": limit})
                response.raise_for_status()
                data = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise ConnectorError(f"WeCom events feed {url}: {type(exc).__name__}: {exc}") from None
            items = tuple(
                ContactEvent(
                    id=str(e["id"]),
                    kind=kinds[e["change_type"]],
                    staff=str(e["userid"]),
                    contact=str(e["external_userid"]),
                    time=_time(e["time"]),
                )
                for e in data.get("events", ())
                if e.get("change_type") in kinds
            )
            next_cursor = str(data.get("next_cursor") or cursor)
            has_more = bool(data.get("has_more")) and next_cursor != cursor
            yield ContactEventPage(items, next_cursor, has_more)
            if not has_more:
                return
            cursor = next_cursor

    # -- what WeCom does not offer here ------------------------------------------------------------

    def tags(self) -> list[TagInfo]:
        """No account tags are mirrored from WeCom (its corp tags are per staff relation)."""
        return []

    def interactions(self, cursor: str = "") -> Iterator[InteractionPage]:
        """Nothing: WeCom's interactions come as :meth:`contact_events` and group changes."""
        return iter(())
