"""WeChat's error codes as the simulator answers them: ``{"errcode": N, "errmsg": "..."}``."""

from __future__ import annotations

from typing import Any

from scrm.errors import ConnectorError

__all__ = ["ERRMSG", "ApiError"]

ERRMSG = {
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40008: "invalid message type",
    40013: "invalid appid",
    40032: "invalid openid list size",
    40035: "invalid args",
    40037: "invalid template_id",
    40052: "invalid action name",
    40053: "invalid action info",
    40125: "invalid appsecret",
    40130: "invalid openid list size, at least two openid",
    41001: "access_token missing",
    42001: "access_token expired",
    43004: "require subscribe",
    44002: "empty post data",
    44004: "empty content",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    45056: "too many tags",
    45059: "user has too many tags",
    45065: "clientmsgid exist",
    45157: "invalid tag name",
    45158: "tag name too long",
    45159: "invalid tag id",
    47001: "data format error",
    48001: "api unauthorized",
}


class ApiError(ConnectorError):
    """What the simulator answers instead of a result: ``{"errcode": N, "errmsg": ...}``."""

    def __init__(self, errcode: int, errmsg: str | None = None, **extra: Any) -> None:
        msg = errmsg or ERRMSG.get(errcode, "error")
        super().__init__(f"{errcode}: {msg}", errcode=errcode)
        self.errmsg = msg
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "errmsg": self.errmsg, **self.extra}
