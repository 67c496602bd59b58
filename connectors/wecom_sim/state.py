"""The WeCom simulator's live state: tokens, limits, the request log, and what each endpoint answers.

What is visible follows the clock: a contact from its ``createtime`` until a deletion, a group from
its ``create_time``, a member from ``join_time`` until they leave. Every method runs under
:attr:`WeComState.lock` (taken by the app) and raises :class:`~connectors.wechat_sim.errors.ApiError`
with WeCom's errcode where WeCom refuses.
"""

from __future__ import annotations

import base64
import bisect
import secrets
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from connectors.wechat_sim.clock import SimClock
from connectors.wechat_sim.errors import ApiError
from connectors.wecom_sim.population import CHANNELS, WeComPopulation

__all__ = ["ERRMSG", "TOKEN_SECONDS", "WeComCredentials", "WeComState"]

TOKEN_SECONDS = 7200
#: WeCom's errcodes as the simulator answers them
ERRMSG = {
    40001: "invalid secret",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40050: "chatid not found",
    40058: "invalid parameter",
    41001: "access_token missing",
    42001: "access_token expired",
    44002: "empty post data",
    45009: "api freq out of limit",
    47001: "data format error",
    48001: "api unauthorized",
    60011: "no privilege to access/modify contact/party/agent",
    60111: "userid not found",
    84061: "not external contact",
}
_CONTACT_PAGE, _LIST_PAGE = 100, 1000


def error(code: int) -> ApiError:
    return ApiError(code, ERRMSG.get(code, "error"))


@dataclass(frozen=True)
class WeComCredentials:
    corpid: str
    secret: str

    @classmethod
    def generate(cls, corpid: str, secret: str | None = None) -> WeComCredentials:
        return cls(corpid, secret or secrets.token_urlsafe(32))


def _cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"p{position}".encode()).decode().rstrip("=") if position else ""


def _position(cursor: Any) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(str(cursor) + "=" * (-len(str(cursor)) % 4)).decode()
        if not text.startswith("p"):
            raise ValueError(text)
        return int(text[1:])
    except (ValueError, UnicodeDecodeError):
        raise ApiError(40058, "invalid cursor") from None


def _limit(body: dict[str, Any], default: int, most: int) -> int:
    try:
        value = int(body.get("limit") or default)
    except (TypeError, ValueError):
        raise error(40058) from None
    if not 1 <= value <= most:
        raise ApiError(40058, f"invalid limit, should be 1..{most}")
    return value


class WeComState:
    """Tokens, per-minute limits, the request log and the endpoints' answers over ``pop``."""

    def __init__(
        self,
        pop: WeComPopulation,
        clock: SimClock,
        credentials: WeComCredentials,
        *,
        per_minute: dict[str, int | None] | None = None,
    ) -> None:
        self.pop, self.clock, self.credentials = pop, clock, credentials
        self.lock = threading.RLock()
        self.tokens: dict[str, int] = {}  # token -> expiry (unix seconds, simulated)
        self.per_minute = dict(per_minute or {})
        self.calls: dict[tuple[str, int], int] = {}
        self.rejecting = False
        self.log: list[dict[str, Any]] = []
        self._events: tuple[list[int], np.ndarray] | None = None

    # ---- tokens, limits, log ------------------------------------------------------------------------
    def issue_token(self, corpid: str | None, secret: str | None) -> dict[str, Any]:
        if corpid != self.credentials.corpid:
            raise error(40013)
        if secret != self.credentials.secret:
            raise error(40001)
        token = secrets.token_urlsafe(48)
        self.tokens[token] = self.clock.timestamp() + TOKEN_SECONDS
        return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": TOKEN_SECONDS}

    def check_token(self, token: str | None) -> None:
        if not token:
            raise error(41001)
        if self.rejecting or token not in self.tokens:
            raise error(40014)
        if self.tokens[token] <= self.clock.timestamp():
            raise error(42001)

    def count_call(self, path: str) -> None:
        limit = self.per_minute.get(path)
        if limit is None:
            return
        key = (path, self.clock.timestamp() // 60)
        if self.calls.get(key, 0) >= limit:
            raise error(45009)
        self.calls[key] = self.calls.get(key, 0) + 1

    def record(self, method: str, path: str, query: dict[str, str], body: Any, errcode: int) -> None:
        redacted = {k: ("***" if k in ("access_token", "corpsecret") else v) for k, v in query.items()}
        self.log.append(
            {"time": self.clock.timestamp(), "method": method, "path": path, "query": redacted, "json": body}
            | {"errcode": errcode}
        )

    # ---- staff ------------------------------------------------------------------------------------
    def simplelist(self, query: dict[str, str]) -> dict[str, Any]:
        if query.get("department_id", "1") != "1":
            raise error(60011)
        users = [
            {"userid": u, "name": name, "department": [1]}
            for u, name in zip(self.pop.staff, self.pop.staff_names, strict=True)
        ]
        return {"errcode": 0, "errmsg": "ok", "userlist": users}

    def follow_user_list(self) -> dict[str, Any]:
        users = [u for u, on in zip(self.pop.staff, self.pop.staff_enabled, strict=True) if on]
        return {"errcode": 0, "errmsg": "ok", "follow_user": users}

    def _staff(self, userid: Any) -> int:
        s = self.pop.staff_index(str(userid)) if userid else None
        if s is None:
            raise error(60111)
        if not self.pop.staff_enabled[s]:
            raise error(60011)
        return s

    def _visible_follows(self, lo: int, hi: int) -> np.ndarray:
        p, now = self.pop, self.clock.timestamp()
        rows: np.ndarray = np.arange(lo, hi)
        seen = (p.f_time[lo:hi] <= now) & ((p.f_removed[lo:hi] == 0) | (p.f_removed[lo:hi] > now))
        visible: np.ndarray = rows[seen]
        return visible

    # ---- external contacts ------------------------------------------------------------------------
    def contact_list(self, userid: Any) -> dict[str, Any]:
        s = self._staff(userid)
        p = self.pop
        rows = self._visible_follows(int(p.staff_range[s]), int(p.staff_range[s + 1]))
        return {"errcode": 0, "errmsg": "ok", "external_userid": [p.contacts[c] for c in p.f_contact[rows]]}

    def _contact(self, c: int) -> dict[str, Any]:
        p = self.pop
        data: dict[str, Any] = {
            "external_userid": p.contacts[c],
            "name": p.contact_names[c],
            "type": 1,
            "gender": 1 + c % 2,
            "avatar": f"http://wx.qlogo.cn/mmhead/{p.contacts[c][2:14]}/0",
        }
        if p.contact_unionids[c]:
            data["unionid"] = p.contact_unionids[c]
        return data

    def _follow(self, row: int, *, batch: bool) -> dict[str, Any]:
        p = self.pop
        s = int(p.f_staff[row])
        info: dict[str, Any] = {
            "userid": p.staff[s],
            "remark": "",
            "description": "",
            "createtime": int(p.f_time[row]),
            "add_way": int(p.f_add_way[row]),
            "oper_userid": p.staff[s] if p.f_add_way[row] == 201 else p.contacts[int(p.f_contact[row])],
        }
        if batch:
            info["tag_id"] = []
        else:
            info["tags"] = []
        if p.f_state[row] >= 0:
            info["state"] = CHANNELS[int(p.f_state[row])]
        return info

    def contact_get(self, external_userid: Any) -> dict[str, Any]:
        p = self.pop
        c = p.contact_index(str(external_userid)) if external_userid else None
        if c is None:
            raise error(84061)
        now = self.clock.timestamp()
        rows = np.flatnonzero(p.f_contact == c)
        rows = rows[(p.f_time[rows] <= now) & ((p.f_removed[rows] == 0) | (p.f_removed[rows] > now))]
        rows = rows[[bool(p.staff_enabled[s]) for s in p.f_staff[rows]]]
        if rows.shape[0] == 0:
            raise error(84061)
        follows = [self._follow(int(r), batch=False) for r in rows]
        return {"errcode": 0, "errmsg": "ok", "external_contact": self._contact(c), "follow_user": follows}

    def batch_get_by_user(self, body: dict[str, Any]) -> dict[str, Any]:
        """``externalcontact/batch/get_by_user``: the follows of up to 100 staff, paged by cursor."""
        users = body.get("userid_list")
        if not isinstance(users, list) or not 1 <= len(users) <= 100:
            raise ApiError(40058, "userid_list should have 1..100 userids")
        staff = [self._staff(u) for u in users]
        limit = _limit(body, 50, _CONTACT_PAGE)
        position = _position(body.get("cursor"))  # rows of the concatenated staff ranges
        p = self.pop
        found: list[int] = []
        offset = next_position = 0
        for s in staff:
            lo, hi = int(p.staff_range[s]), int(p.staff_range[s + 1])
            if position < offset + hi - lo:
                rows = self._visible_follows(lo + max(0, position - offset), hi)
                take = [int(r) for r in rows[: limit - len(found)]]
                found.extend(take)
                if len(found) >= limit:
                    next_position = offset + take[-1] - lo + 1
                    break
            offset += hi - lo
        total = sum(int(p.staff_range[s + 1] - p.staff_range[s]) for s in staff)
        items = [
            {
                "external_contact": self._contact(int(p.f_contact[r])),
                "follow_info": self._follow(r, batch=True),
            }
            for r in found
        ]
        cursor = _cursor(next_position) if next_position < total else ""
        return {"errcode": 0, "errmsg": "ok", "external_contact_list": items, "next_cursor": cursor}

    # ---- customer groups --------------------------------------------------------------------------
    def groupchat_list(self, body: dict[str, Any]) -> dict[str, Any]:
        p = self.pop
        status = body.get("status_filter", 0)
        if status not in (0, 1, 2, 3):
            raise error(40058)
        limit = _limit(body, 100, _LIST_PAGE)
        visible = int(np.searchsorted(p.g_time, self.clock.timestamp(), side="right"))
        rows = np.arange(visible)
        if status:
            rows = rows[p.g_status[:visible] == status]
        owners = (body.get("owner_filter") or {}).get("userid_list") if isinstance(body, dict) else None
        if owners:
            wanted = [p.staff_index(str(u)) for u in owners]
            rows = rows[np.isin(p.g_owner[rows], [w for w in wanted if w is not None])]
        start = _position(body.get("cursor"))
        page = rows[(rows >= start)][:limit]
        more = page.shape[0] == limit and bool((rows > page[-1]).any())
        return {
            "errcode": 0,
            "errmsg": "ok",
            "group_chat_list": [{"chat_id": p.groups[g], "status": int(p.g_status[g])} for g in page],
            "next_cursor": _cursor(int(page[-1]) + 1) if more else "",
        }

    def groupchat_get(self, body: dict[str, Any]) -> dict[str, Any]:
        p = self.pop
        g = p.group_index(str(body.get("chat_id") or ""))
        now = self.clock.timestamp()
        if g is None or p.g_time[g] > now:
            raise error(40050)
        lo, hi = int(p.group_range[g]), int(p.group_range[g + 1])
        members = []
        for m in range(lo, hi):
            if p.m_join[m] > now or (p.m_leave[m] and p.m_leave[m] <= now):
                continue
            kind, who = int(p.m_kind[m]), int(p.m_who[m])
            entry: dict[str, Any] = {
                "userid": p.staff[who] if kind == 1 else p.contacts[who],
                "type": kind,
                "join_time": int(p.m_join[m]),
                "join_scene": int(p.m_scene[m]),
            }
            if kind == 2 and p.contact_unionids[who]:
                entry["unionid"] = p.contact_unionids[who]
            invitor = int(p.m_invitor_kind[m])
            if invitor:
                i = int(p.m_invitor[m])
                entry["invitor"] = {"userid": p.staff[i] if invitor == 1 else p.contacts[i]}
            members.append(entry)
        chat = {
            "chat_id": p.groups[g],
            "name": p.group_names[g],
            "owner": p.staff[int(p.g_owner[g])],
            "create_time": int(p.g_time[g]),
            "notice": "",
            "member_list": members,
            "admin_list": [],
        }
        return {"errcode": 0, "errmsg": "ok", "group_chat": chat}

    # ---- events (what the corp's callback receiver recorded) --------------------------------------
    def events(self, cursor: str, limit: int) -> dict[str, Any]:
        """Contact deletions up to the clock, oldest first: ``{"events", "next_cursor", "has_more"}``."""
        p = self.pop
        if self._events is None:
            rows = np.flatnonzero(p.f_removed > 0)
            rows = rows[np.lexsort((rows, p.f_removed[rows]))]
            self._events = (p.f_removed[rows].tolist(), rows)
        times, rows = self._events
        visible = bisect.bisect_right(times, self.clock.timestamp())
        start = _position(cursor)
        chunk = rows[start : min(start + limit, visible)]
        events = [
            {
                "id": f"ev{int(r)}",
                "event": "change_external_contact",
                "change_type": "del_external_contact" if p.f_removed_by[r] == 1 else "del_follow_user",
                "userid": p.staff[int(p.f_staff[r])],
                "external_userid": p.contacts[int(p.f_contact[r])],
                "time": int(p.f_removed[r]),
            }
            for r in chunk
        ]
        end = start + len(events)
        return {"events": events, "next_cursor": _cursor(end) or cursor, "has_more": end < visible}
