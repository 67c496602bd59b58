"""The simulated platform's state and its core rules: credentials, tokens, quotas, followers, tags, log.

Times are read from the :class:`~connectors.wechat_sim.clock.SimClock`, never from the wall clock,
so tests drive expiry, windows and day boundaries by moving the clock. A follower's state at clock
time ``t`` is every generated event up to ``t`` applied (subscribe, unsubscribe, re-subscribe).

Rules and the codes WeChat answers with (``ApiError.errcode``):

- token: wrong appid 40013, wrong secret 40125, bad grant_type 40002; a token lives 7,200 s (then
  42001); fetching a new one leaves the old one valid for 300 s more (then 40001); unknown 40001;
  missing 41001.
- quotas: per endpoint and day (Beijing time, UTC+8, as WeChat counts), and per minute where the
  platform has such a limit; over either: 45009. Both tables can be overridden per instance.
- user/get: 10,000 openids a page; every page with openids carries ``next_openid`` = its last
  openid, and a call past the end answers ``count: 0`` without ``data`` and with an empty
  ``next_openid`` (what WeChat does, and what wechatpy's ``iter_followers`` stops on).
- tags: at most 100 tags, names unique (45157) and up to 30 bytes (45158), 20 tags per follower
  (45059), 50 openids per batch (40032); only current followers can be tagged (40003).
- profiles: 40003 for an openid the account never had; an unsubscribed follower answers
  ``subscribe: 0`` with only openid (and unionid); batchget takes at most 100 (else 40032).
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from connectors.wechat_sim import _content as content
from connectors.wechat_sim.clock import SimClock
from connectors.wechat_sim.errors import ApiError
from connectors.wechat_sim.population import Population

__all__ = [
    "DEFAULT_PER_MINUTE",
    "DEFAULT_QUOTAS",
    "Credentials",
    "SimState",
]

TOKEN_TTL = 7200
TOKEN_GRACE = 300
PAGE = 10_000
BATCH = 100
MAX_TAGS = 100
MAX_TAGS_PER_USER = 20
BEIJING = 8 * 3600

# Daily call quotas (platform doc "Daily quotas"); endpoints not listed are unlimited.
DEFAULT_QUOTAS: dict[str, int] = {
    "token": 2000,
    "user/get": 500,
    "user/info": 5_000_000,
    "user/info/batchget": 5_000_000,
    "message/custom/send": 500_000,
    "message/template/send": 100_000,
    "message/mass/send": 100,
    "message/mass/sendall": 100,
    "message/mass/preview": 100,
    "qrcode/create": 100_000,
    "tags/create": 1000,
}
# Calls per rolling minute.
DEFAULT_PER_MINUTE: dict[str, int] = {
    "message/mass/send": 60,
    "message/mass/sendall": 60,
}


@dataclass(frozen=True)
class Credentials:
    """What the simulated account accepts (``token``/``encoding_aes_key`` sign callbacks)."""

    appid: str
    secret: str
    token: str
    encoding_aes_key: str

    @classmethod
    def generate(
        cls,
        appid: str | None = None,
        secret: str | None = None,
        token: str | None = None,
        encoding_aes_key: str | None = None,
    ) -> Credentials:
        """Fill in what is not given with fresh random values of WeChat's shapes."""
        return cls(
            appid=appid or "wxsim" + secrets.token_hex(7)[:13],
            secret=secret or secrets.token_hex(16),
            token=token or secrets.token_hex(16),
            encoding_aes_key=encoding_aes_key or base64.b64encode(secrets.token_bytes(32)).decode()[:43],
        )


@dataclass
class _Token:
    expires: int
    superseded: int | None = None


class SimState:
    """The live platform state, guarded by ``lock`` (one request at a time)."""

    def __init__(
        self,
        population: Population,
        clock: SimClock,
        credentials: Credentials,
        *,
        quotas: Mapping[str, int | None] | None = None,
        per_minute: Mapping[str, int | None] | None = None,
    ) -> None:
        self.pop = population
        self.clock = clock
        self.credentials = credentials
        self.lock = threading.RLock()
        self.quotas: dict[str, int | None] = {**DEFAULT_QUOTAS, **(quotas or {})}
        self.per_minute: dict[str, int | None] = {**DEFAULT_PER_MINUTE, **(per_minute or {})}
        self.rejecting = False
        self._tokens: dict[str, _Token] = {}
        self._current: str | None = None
        self._calls: dict[tuple[int, str], int] = {}
        self._recent: dict[str, deque[int]] = {}
        self.tags: dict[int, str] = dict(population.tags)
        self.tag_members: dict[int, set[int]] = {k: set(v) for k, v in population.tag_members.items()}
        self.remarks: dict[int, str] = {}
        self.log: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []  # delivered: kind, openid, msgtype, payload, time, msgid
        self.mass_jobs: dict[int, dict[str, Any]] = {}
        self.qrcodes: list[dict[str, Any]] = []
        self._view_at: int | None = None
        self._view: np.ndarray = np.zeros(0, dtype=np.int64)
        self.share_read_ids = [r.id for r in population.share_reads]
        self.share_read_times = [r.time for r in population.share_reads]

    # ---- time and quotas ---------------------------------------------------------------------------
    def now(self) -> int:
        return self.clock.timestamp()

    def count_call(self, endpoint: str) -> None:
        """Count one call of ``endpoint`` against its daily and per-minute limits (45009 when over)."""
        now = self.now()
        limit = self.quotas.get(endpoint)
        key = ((now + BEIJING) // 86_400, endpoint)
        if limit is not None and self._calls.get(key, 0) >= limit:
            raise ApiError(45009)
        per_min = self.per_minute.get(endpoint)
        if per_min is not None:
            recent = self._recent.setdefault(endpoint, deque())
            while recent and recent[0] <= now - 60:
                recent.popleft()
            if len(recent) >= per_min:
                raise ApiError(45009, "api freq out of limit")
            recent.append(now)
        self._calls[key] = self._calls.get(key, 0) + 1

    def calls_today(self, endpoint: str) -> int:
        """How many calls of ``endpoint`` were counted today (Beijing day)."""
        return self._calls.get(((self.now() + BEIJING) // 86_400, endpoint), 0)

    def clear_quota(self) -> None:
        """Reset today's counters (WeChat's ``clear_quota``)."""
        day = (self.now() + BEIJING) // 86_400
        for key in [k for k in self._calls if k[0] == day]:
            del self._calls[key]
        self._recent.clear()

    # ---- tokens ------------------------------------------------------------------------------------
    def issue_token(self, grant_type: str | None, appid: str | None, secret: str | None) -> dict[str, Any]:
        """``GET /cgi-bin/token``: a new token; the previous one stays valid for 300 s."""
        if grant_type != "client_credential":
            raise ApiError(40002)
        if appid != self.credentials.appid:
            raise ApiError(40013)
        if not secret or not secrets.compare_digest(secret, self.credentials.secret):
            raise ApiError(40125)
        self.count_call("token")
        now = self.now()
        if self._current is not None:
            old = self._tokens[self._current]
            old.superseded = now
        token = secrets.token_urlsafe(102)[:136]
        self._tokens[token] = _Token(expires=now + TOKEN_TTL)
        self._current = token
        return {"access_token": token, "expires_in": TOKEN_TTL}

    def check_token(self, token: str | None) -> None:
        """Raise the error WeChat answers for a missing, unknown, superseded or expired token."""
        if self.rejecting:
            raise ApiError(40001)
        if not token:
            raise ApiError(41001)
        info = self._tokens.get(token)
        if info is None:
            raise ApiError(40001)
        now = self.now()
        if info.superseded is not None and now >= info.superseded + TOKEN_GRACE:
            raise ApiError(40001)
        if now >= info.expires:
            raise ApiError(42001)

    # ---- followers ---------------------------------------------------------------------------------
    def subscribed(self) -> np.ndarray:
        """Indices of the current followers in subscribe order (cached per clock time)."""
        now = self.now()
        if self._view_at != now:
            self._view = np.nonzero(self.pop.subscribed_mask(now))[0]
            self._view_at = now
        return self._view

    def is_subscribed(self, i: int) -> bool:
        """Whether follower ``i`` follows the account now."""
        return self._sub_at(i, self.now())

    def _sub_at(self, i: int, t: int) -> bool:
        pop = self.pop
        back = int(pop.resubscribe[i])
        if 0 < back <= t:
            return True
        gone = int(pop.unsubscribe[i])
        return int(pop.first_subscribe[i]) <= t and not (0 < gone <= t)

    def follower_index(self, openid: Any) -> int:
        """The index of ``openid``; 40003 for an openid this account never had."""
        i = self.pop.index.get(openid) if isinstance(openid, str) else None
        if i is None:
            raise ApiError(40003)
        return i

    def follower_page(self, next_openid: str | None, lister: np.ndarray | None = None) -> dict[str, Any]:
        """One page of ``user/get`` (or ``user/tag/get`` when ``lister`` is given)."""
        view = self.subscribed() if lister is None else lister
        pos = 0
        if next_openid:
            pos = int(np.searchsorted(view, self.follower_index(next_openid), side="right"))
        chunk = view[pos : pos + PAGE]
        page: dict[str, Any] = {"total": len(view)} if lister is None else {}
        if len(chunk) == 0:
            page.update(count=0, next_openid="")
            return page
        openids = self.pop.openids
        ids = [openids[i] for i in chunk.tolist()]
        page.update(count=len(ids), data={"openid": ids}, next_openid=ids[-1])
        return page

    def profile(self, i: int, lang: str | None = None, now: int | None = None) -> dict[str, Any]:
        """What ``user/info`` answers for follower ``i`` now (only the fields kept since 2021-12)."""
        pop = self.pop
        openid, unionid = pop.openids[i], pop.unionids[i]
        now = self.now() if now is None else now
        if not self._sub_at(i, now):
            gone: dict[str, Any] = {"subscribe": 0, "openid": openid}
            if unionid:
                gone["unionid"] = unionid
            return gone
        info: dict[str, Any] = {
            "subscribe": 1,
            "openid": openid,
            "language": pop.language[i],
            "subscribe_time": pop.subscribe_time(i, now),
        }
        if unionid:
            info["unionid"] = unionid
        info["remark"] = self.remarks.get(i, "")
        info["groupid"] = 0
        info["tagid_list"] = self.user_tags(i)
        info["subscribe_scene"] = pop.scene[i]
        info["qr_scene"] = pop.qr_scene[i]
        info["qr_scene_str"] = pop.qr_scene_str[i]
        return info

    def batch_profiles(self, body: Any) -> dict[str, Any]:
        """``user/info/batchget``: at most 100 openids, any unknown one fails the call (40003)."""
        users = body.get("user_list") if isinstance(body, dict) else None
        if not isinstance(users, list) or not users:
            raise ApiError(40035)
        if len(users) > BATCH:
            raise ApiError(40032)
        idx = [self.follower_index(u.get("openid") if isinstance(u, dict) else None) for u in users]
        now = self.now()
        return {"user_info_list": [self.profile(i, now=now) for i in idx]}

    # ---- tags --------------------------------------------------------------------------------------
    def user_tags(self, i: int) -> list[int]:
        return [tag for tag, members in self.tag_members.items() if i in members]

    def create_tag(self, name: Any) -> dict[str, Any]:
        if not isinstance(name, str) or not name or name in self.tags.values():
            raise ApiError(45157)
        if len(name.encode("utf-8")) > 30:
            raise ApiError(45158)
        if len(self.tags) >= MAX_TAGS:
            raise ApiError(45056)
        tag_id = max(self.tags, default=99) + 1
        self.tags[tag_id] = name
        self.tag_members[tag_id] = set()
        return {"tag": {"id": tag_id, "name": name}}

    def tag_list(self) -> dict[str, Any]:
        subscribed = self.subscribed()
        live = set(subscribed.tolist()) if len(subscribed) < len(self.pop) else None
        return {
            "tags": [
                {"id": tag, "name": name, "count": len(m) if live is None else len(m & live)}
                for tag, name in sorted(self.tags.items())
                for m in [self.tag_members[tag]]
            ]
        }

    def _tag_id(self, value: Any) -> int:
        try:
            tag = int(value)
        except (TypeError, ValueError):
            raise ApiError(45159) from None
        if tag not in self.tags:
            raise ApiError(45159)
        return tag

    def tag_users(self, body: Any, *, tag: bool) -> dict[str, Any]:
        """``tags/members/batchtagging`` (``tag=True``) and ``batchuntagging``: at most 50 openids."""
        if not isinstance(body, dict):
            raise ApiError(44002)
        tag_id = self._tag_id(body.get("tagid"))
        openids = body.get("openid_list")
        if not isinstance(openids, list) or not 0 < len(openids) <= 50:
            raise ApiError(40032)
        idx = [self.follower_index(o) for o in openids]
        if not all(self.is_subscribed(i) for i in idx):
            raise ApiError(40003)  # only followers can be tagged
        members = self.tag_members[tag_id]
        if tag:
            for i in idx:
                if i not in members and len(self.user_tags(i)) >= MAX_TAGS_PER_USER:
                    raise ApiError(45059)
            members.update(idx)
        else:
            members.difference_update(idx)
        return {"errcode": 0, "errmsg": "ok"}

    def tag_members_page(self, body: Any) -> dict[str, Any]:
        """``user/tag/get``: current followers with the tag, 10,000 a page."""
        if not isinstance(body, dict):
            raise ApiError(44002)
        tag_id = self._tag_id(body.get("tagid"))
        members = np.array(sorted(self.tag_members[tag_id]), dtype=np.int64)
        now = self.now()
        live = np.array([i for i in members.tolist() if self._sub_at(i, now)], dtype=np.int64)
        return self.follower_page(body.get("next_openid") or None, lister=live)

    # ---- the request log ---------------------------------------------------------------------------
    def record(
        self, method: str, path: str, query: Mapping[str, str], body: Any, errcode: int
    ) -> dict[str, Any]:
        """Append one request to the log; ``access_token`` and ``secret`` values are redacted."""
        safe = {k: ("REDACTED" if k in ("access_token", "secret") else v) for k, v in query.items()}
        entry = {
            "seq": len(self.log) + 1,
            "time": datetime.fromtimestamp(self.now(), UTC).isoformat(),
            "method": method,
            "path": path,
            "query": safe,
            "json": body,
            "errcode": errcode,
        }
        self.log.append(entry)
        return entry

    def templates(self) -> dict[str, Any]:
        """``template/get_all_private_template``."""
        return {
            "template_list": [
                {"template_id": tid, "title": title, "content": text, "example": ""}
                for tid, (title, text) in content.TEMPLATES.items()
            ]
        }
