"""Sending rules of the simulated account: customer-service, template and mass messages, QR codes.

- ``message/custom/send``: the recipient must follow (43004; 40003 for an unknown openid) and be
  inside a window opened by their own action: after a message from them, 5 messages within 48 h;
  after a menu click, a follow or a QR scan, 3 messages within 1 minute. Outside, or over the count:
  45015 (what WeChat answers today; older documents give 45047 for the count).
- ``message/template/send``: the template must exist (40037; the account has ``TPL_EVENT``,
  ``TPL_ORDER``, ``TPL_POINTS``), the recipient must follow; answers ``msgid``.
- ``message/mass/send`` (2 to 10,000 openids, else 40130 / 40032) and ``sendall`` (a tag or
  everyone): each follower receives at most 4 mass messages a calendar month (Beijing time);
  followers over the limit are filtered out of the job, which still succeeds, as on WeChat (the job's
  ``filter_count`` and ``sent_count`` show it). A ``clientmsgid`` seen in the last 24 h answers
  45065 with the earlier job's ``msg_id`` and sends nothing. 60 calls a minute, 100 a day (45009).
- ``qrcode/create``: temporary (``QR_SCENE``, ``QR_STR_SCENE``, 60 s by default, 30 days at most)
  and permanent (``QR_LIMIT_SCENE`` 1-100,000, ``QR_LIMIT_STR_SCENE``) codes.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
from datetime import UTC, datetime
from typing import Any

from connectors.wechat_sim import _content as content
from connectors.wechat_sim.errors import ApiError
from connectors.wechat_sim.state import SimState

__all__ = ["Messaging"]

TEXT_WINDOW, TEXT_LIMIT = 48 * 3600, 5
EVENT_WINDOW, EVENT_LIMIT = 60, 3
MONTHLY_MASS = 4
CUSTOM_TYPES = {
    "text",
    "image",
    "voice",
    "video",
    "music",
    "news",
    "mpnews",
    "msgmenu",
    "wxcard",
    "miniprogrampage",
}
MASS_TYPES = {"text", "image", "voice", "mpvideo", "mpnews", "wxcard", "news"}
QR_ACTIONS = {"QR_SCENE", "QR_STR_SCENE", "QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE"}


class Messaging:
    """Send-side rules over a :class:`SimState` (call with ``state.lock`` held)."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        # Kept on the state, where tests look: what was delivered, mass jobs, QR codes made.
        self.sent = state.sent
        self.mass_jobs = state.mass_jobs
        self.qrcodes = state.qrcodes
        self._clientmsgids: dict[str, tuple[int, int]] = {}
        self._monthly: dict[tuple[int, str], int] = {}
        self._custom_times: dict[int, list[int]] = {}
        self._next_msgid = 1_000_000_001
        # The follower's own actions that open customer-service windows, per follower, in time order.
        self._texts: dict[int, list[int]] = {}
        self._events: dict[int, list[int]] = {}
        index = state.pop.index
        for a in state.pop.actions:
            if a.kind == "text":
                self._texts.setdefault(index[a.openid], []).append(a.time)
            elif a.kind in ("click", "subscribe", "scan"):
                self._events.setdefault(index[a.openid], []).append(a.time)

    def _msgid(self) -> int:
        self._next_msgid += 1
        return self._next_msgid

    def record_action(self, openid: str, kind: str, at: int | None = None) -> None:
        """Note an action of the follower (e.g. pushed by a test) that opens a window."""
        i = self.state.follower_index(openid)
        t = self.state.now() if at is None else at
        bucket = self._texts if kind == "text" else self._events
        bisect.insort(bucket.setdefault(i, []), t)

    # ---- customer-service messages -----------------------------------------------------------------
    def _window_open(self, i: int, now: int) -> bool:
        sent = self._custom_times.get(i, [])
        for times, span, limit in (
            (self._texts, TEXT_WINDOW, TEXT_LIMIT),
            (self._events, EVENT_WINDOW, EVENT_LIMIT),
        ):
            mine = times.get(i, [])
            k = bisect.bisect_right(mine, now)
            if k == 0:
                continue
            opened = mine[k - 1]
            if now - opened <= span and len(sent) - bisect.bisect_left(sent, opened) < limit:
                return True
        return False

    def custom_send(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(44002)
        msgtype = body.get("msgtype")
        if msgtype not in CUSTOM_TYPES or not isinstance(body.get(msgtype), dict):
            raise ApiError(40008)
        if msgtype == "text" and not body["text"].get("content"):
            raise ApiError(44004)
        i = self._recipient(body.get("touser"))
        now = self.state.now()
        if not self._window_open(i, now):
            raise ApiError(45015)
        self._custom_times.setdefault(i, []).append(now)
        self._log_sent("custom", i, msgtype, body.get(msgtype), now)
        return {"errcode": 0, "errmsg": "ok"}

    def _recipient(self, openid: Any) -> int:
        i = self.state.follower_index(openid)
        if not self.state.is_subscribed(i):
            raise ApiError(43004)
        return i

    def _log_sent(self, kind: str, i: int, msgtype: str, payload: Any, now: int, msgid: int = 0) -> None:
        self.sent.append(
            {
                "kind": kind,
                "openid": self.state.pop.openids[i],
                "msgtype": msgtype,
                "payload": payload,
                "time": now,
                "msgid": msgid,
            }
        )

    # ---- template messages -------------------------------------------------------------------------
    def template_send(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(44002)
        template_id = body.get("template_id")
        if template_id not in content.TEMPLATES:
            raise ApiError(40037)
        i = self._recipient(body.get("touser"))
        msgid = self._msgid()
        payload = {"template_id": template_id, "data": body.get("data"), "url": body.get("url")}
        self._log_sent("template", i, "template", payload, self.state.now(), msgid)
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}

    # ---- mass messages -----------------------------------------------------------------------------
    def _month(self, now: int) -> str:
        return datetime.fromtimestamp(now + 8 * 3600, UTC).strftime("%Y-%m")

    def _mass_payload(self, body: Any) -> tuple[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(44002)
        msgtype = body.get("msgtype")
        if msgtype not in MASS_TYPES or not isinstance(body.get(msgtype), dict):
            raise ApiError(40008)
        return msgtype, body.get(msgtype)

    def mass_send(self, body: Any, *, to_all: bool) -> dict[str, Any]:
        """``message/mass/send`` (``to_all=False``: an openid list) or ``sendall`` (a tag or everyone)."""
        state = self.state
        msgtype, payload = self._mass_payload(body)
        now = state.now()
        clientmsgid = body.get("clientmsgid")
        if clientmsgid is not None:
            if not isinstance(clientmsgid, str) or len(clientmsgid) > 64:
                raise ApiError(
                    45067 if isinstance(clientmsgid, str) else 40035, "clientmsgid size out of limit"
                )
            seen = self._clientmsgids.get(clientmsgid)
            if seen is not None and now - seen[1] < 86_400:
                raise ApiError(45065, msg_id=seen[0])
        if to_all:
            recipients = self._sendall_recipients(body.get("filter"))
        else:
            touser = body.get("touser")
            if not isinstance(touser, list) or len(touser) < 2:
                raise ApiError(40130)
            if len(touser) > 10_000:
                raise ApiError(40032)
            recipients = list(dict.fromkeys(state.follower_index(o) for o in touser))
        msg_id = self._msgid()
        month = self._month(now)
        live = [i for i in recipients if state.is_subscribed(i)]
        delivered, filtered = [], []
        for i in live:
            key = (i, month)
            if self._monthly.get(key, 0) >= MONTHLY_MASS:
                filtered.append(state.pop.openids[i])
                continue
            self._monthly[key] = self._monthly.get(key, 0) + 1
            delivered.append(i)
            self._log_sent("mass", i, msgtype, payload, now, msg_id)
        self.mass_jobs[msg_id] = {
            "msg_id": msg_id,
            "clientmsgid": clientmsgid,
            "time": now,
            "msgtype": msgtype,
            "total_count": len(live),
            "filter_count": len(delivered),
            "sent_count": len(delivered),
            "error_count": 0,
            "over_monthly_limit": filtered,
        }
        if clientmsgid is not None:
            self._clientmsgids[clientmsgid] = (msg_id, now)
        answer: dict[str, Any] = {"errcode": 0, "errmsg": "send job submission success", "msg_id": msg_id}
        if msgtype == "mpnews":
            answer["msg_data_id"] = msg_id % 1_000_000_000
        return answer

    def _sendall_recipients(self, spec: Any) -> list[int]:
        state = self.state
        if not isinstance(spec, dict):
            raise ApiError(40035)
        if spec.get("is_to_all") is True:
            return [int(i) for i in state.subscribed().tolist()]
        tag = spec.get("tag_id", spec.get("group_id"))
        tag_id = state._tag_id(tag)
        return sorted(state.tag_members[tag_id])

    def mass_preview(self, body: Any) -> dict[str, Any]:
        msgtype, payload = self._mass_payload(body)
        if "touser" not in body:
            raise ApiError(40003)  # towxname: the simulator knows no WeChat ids
        i = self._recipient(body.get("touser"))
        msg_id = self._msgid()
        self._log_sent("preview", i, msgtype, payload, self.state.now(), msg_id)
        return {"errcode": 0, "errmsg": "preview success", "msg_id": msg_id}

    def mass_get(self, body: Any) -> dict[str, Any]:
        msg_id = body.get("msg_id") if isinstance(body, dict) else None
        if msg_id not in self.mass_jobs:
            raise ApiError(40035)
        return {"msg_id": msg_id, "msg_status": "SEND_SUCCESS"}

    # ---- QR codes ----------------------------------------------------------------------------------
    def create_qrcode(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(44002)
        action = body.get("action_name")
        if action not in QR_ACTIONS:
            raise ApiError(40052)
        info = body.get("action_info")
        scene = info.get("scene") if isinstance(info, dict) else None
        if not isinstance(scene, dict):
            raise ApiError(40053)
        if action.endswith("STR_SCENE"):
            value: Any = scene.get("scene_str")
            if not isinstance(value, str) or not 0 < len(value) <= 64:
                raise ApiError(40053)
        else:
            value = scene.get("scene_id")
            top = 100_000 if action == "QR_LIMIT_SCENE" else 2**32 - 1
            if not isinstance(value, int) or not 0 < value <= top:
                raise ApiError(40053)
        now = self.state.now()
        seed = f"{self.state.credentials.appid}:{action}:{value}:{len(self.qrcodes)}".encode()
        digest = hashlib.sha256(seed).digest()
        answer: dict[str, Any] = {"ticket": base64.b64encode(digest + digest[:12]).decode()}
        if not action.startswith("QR_LIMIT"):
            seconds = body.get("expire_seconds", 60)
            if not isinstance(seconds, int) or seconds <= 0:
                raise ApiError(40035)
            answer["expire_seconds"] = min(seconds, 2_592_000)
        answer["url"] = "http://weixin.qq.com/q/" + base64.urlsafe_b64encode(digest[:18]).decode().rstrip("=")
        self.qrcodes.append({**answer, "action_name": action, "scene": value, "time": now})
        return answer
