"""wechatpy made safe for a sync: a configurable base URL, bounded token refresh, backoff, errors.

wechatpy's :class:`~wechatpy.WeChatClient` talks to ``https://api.weixin.qq.com`` only, retries a
rejected token without any limit (a server that keeps rejecting ends in ``RecursionError``), and
shares one ``requests.Session`` and an unlocked token refresh between threads. Here:

- :class:`WeChatApi` gives each thread its own client (and so its own HTTP session), all sharing one
  :class:`_TokenKeeper`, which refreshes under a lock and only when the token a call was refused with
  is still the current one (so N threads refused at once fetch one new token, not N);
- :meth:`WeChatApi.call` retries a refused token at most ``max_token_refreshes`` times in a row and
  then raises :class:`~scrm.errors.TokenRejected`; it backs off with jitter on 45009 and raises
  :class:`~scrm.errors.RateLimited` when the retry budget is spent; every other errcode becomes the
  closest class of the scrm exception tree, with the errcode kept.

The same machinery serves WeCom (:mod:`connectors.wecom`): it passes its own wechatpy client class
(``client_factory``), errcode table and name for messages.

Tokens and secrets are never logged nor put in messages.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.request import getproxies

import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from scrm.errors import (
    ConnectorError,
    OutsideWindow,
    RateLimited,
    RecipientRefused,
    TokenRejected,
)

__all__ = ["ERRORS", "WeChatApi", "error_for"]

log = logging.getLogger(__name__)
_SECRET_PARAM = re.compile(r"((?:access_token|secret)=)[^&\s\"']+")


class RedactSecrets(logging.Filter):
    """Hide ``access_token=`` and ``secret=`` values in log records (urllib3 logs request URLs at DEBUG).

    >>> RedactSecrets().redact("GET /cgi-bin/token?appid=wx1&secret=abc&x=1")
    'GET /cgi-bin/token?appid=wx1&secret=***&x=1'
    """

    @staticmethod
    def redact(text: str) -> str:
        return _SECRET_PARAM.sub(r"\1***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = self.redact(record.msg)
        return True


def _redact_http_logs() -> None:
    """Put :class:`RedactSecrets` on the loggers of the HTTP stack (once)."""
    for name in ("urllib3.connectionpool", "httpx", "httpcore", "wechatpy"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


T = TypeVar("T")

#: errcodes meaning "the access token is not (or no longer) valid": fetch a new one and retry
TOKEN_CODES = frozenset({40001, 40014, 42001})
RATE_LIMITED = 45009
#: errcode -> (exception class, what to do)
ERRORS: dict[int, tuple[type[ConnectorError], str]] = {
    40001: (TokenRejected, "the access token was refused"),
    40014: (TokenRejected, "the access token is not valid"),
    42001: (TokenRejected, "the access token expired"),
    41001: (TokenRejected, "no access token was sent"),
    40013: (TokenRejected, "the appid is not valid: check the account's appid in config.toml"),
    40125: (
        TokenRejected,
        "the secret is not valid: check the account's secret (SCRM_ACCOUNTS__NAME__SECRET)",
    ),
    40164: (TokenRejected, "this machine's IP is not on the account's IP whitelist"),
    45009: (RateLimited, "an API frequency limit or daily quota was reached: retry later"),
    40003: (RecipientRefused, "the openid is not valid for this account"),
    43004: (RecipientRefused, "the recipient does not follow the account"),
    45015: (OutsideWindow, "outside the service-message window after the follower's last action"),
    45047: (OutsideWindow, "too many service messages since the follower's last action"),
}


ErrorTable = Mapping[int, tuple[type[ConnectorError], str]]


def error_for(
    errcode: int | None, errmsg: object, what: str, *, errors: ErrorTable = ERRORS, label: str = "WeChat"
) -> ConnectorError:
    """The scrm exception for an errcode, with a message saying what failed and why."""
    if errcode is None:
        return ConnectorError(f"{label} {what}: no valid answer ({errmsg})")
    cls, meaning = errors.get(errcode, (ConnectorError, "the platform refused the call"))
    return cls(f"{label} {what}: {meaning} (errcode {errcode}: {errmsg})", errcode=errcode)


class _Client(WeChatClient):  # type: ignore[misc]
    """wechatpy's client against ``api_base``, taking its token from a shared keeper."""

    def __init__(self, api: WeChatApi) -> None:
        super().__init__(api.appid, api.secret, timeout=api.timeout, auto_retry=False)
        self.API_BASE_URL = api.api_base + "/cgi-bin/"
        self._token_url = api.api_base + "/cgi-bin/token"
        self._keeper = api.keeper
        # requests reads proxy variables and ~/.netrc on every request (a third of a profile call's
        # client time); read the proxies once here instead, so HTTPS_PROXY & co. still apply.
        self._http.trust_env = False
        self._http.proxies = getproxies()

    @property
    def access_token(self) -> str:
        return self._keeper.token(self)

    def fetch_access_token(self) -> dict[str, Any]:
        result: dict[str, Any] = self._fetch_access_token(
            url=self._token_url,
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )
        return result


class _TokenKeeper:
    """The account's access token, shared by every thread's client; refreshed under a lock."""

    def __init__(self, errors: ErrorTable = ERRORS, label: str = "WeChat") -> None:
        self.errors, self.label = errors, label
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.fetches = 0

    def adopt(self, other: _TokenKeeper) -> None:
        """Start from ``other``'s token (a copy made for another process: no second token request)."""
        self._token, self._expires_at = other._token, other._expires_at

    def token(self, client: Any) -> str:
        token = self._token
        if token is not None and self._expires_at - time.monotonic() > 60:
            return token
        return self.refresh(client, token)

    def refresh(self, client: Any, refused: str | None) -> str:
        """A new token, unless another thread already replaced the ``refused`` one."""
        with self._lock:
            if self._token is not None and self._token != refused:
                return self._token
            try:
                result = client.fetch_access_token()
            except WeChatClientException as exc:
                raise error_for(
                    exc.errcode, exc.errmsg, "token request", errors=self.errors, label=self.label
                ) from None
            except requests.RequestException as exc:
                # not the exception's text: it holds the URL, and so the secret
                raise ConnectorError(
                    f"{self.label} token request: cannot reach {client._token_url} ({type(exc).__name__})"
                ) from None
            self.fetches += 1
            self._token = str(result["access_token"])
            self._expires_at = time.monotonic() + float(result.get("expires_in", 7200))
            return self._token


@dataclass(frozen=True)
class RetryPolicy:
    max_token_refreshes: int = 3
    rate_limit_retries: int = 5
    backoff_seconds: float = 1.0


class WeChatApi:
    """Thread-safe access to one account's API through wechatpy.

    Parameters
    ----------
    appid, secret
        The account's credentials.
    api_base
        ``https://api.weixin.qq.com`` (WeChat) or a simulator's base URL.
    policy
        Bounds of token refresh and rate-limit retries.
    timeout
        HTTP timeout of one request, in seconds.
    client_factory, errors, label
        For another platform of the same family (WeCom): the wechatpy client made for each thread
        (called with this object; it must read its token from :attr:`keeper`), the errcode table
        and the platform's name in messages.
    """

    def __init__(
        self,
        appid: str,
        secret: str,
        *,
        api_base: str,
        policy: RetryPolicy | None = None,
        timeout: float = 30.0,
        seed: int | None = None,
        client_factory: Callable[[WeChatApi], Any] | None = None,
        errors: ErrorTable = ERRORS,
        label: str = "WeChat",
    ) -> None:
        self.appid, self.secret, self.timeout = appid, secret, timeout
        self.api_base = api_base.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.errors, self.label = errors, label
        self.keeper = _TokenKeeper(errors, label)
        _redact_http_logs()
        self._factory: Callable[[WeChatApi], Any] = client_factory or _Client
        self._local = threading.local()
        self._clients: list[Any] = []
        self._clients_lock = threading.Lock()
        self._random = random.Random(seed)
        self.sleep: Callable[[float], None] = time.sleep

    def __repr__(self) -> str:  # never the secret
        return f"WeChatApi(appid={self.appid!r}, api_base={self.api_base!r})"

    def client(self) -> Any:
        """This thread's wechatpy client (created on first use)."""
        client: Any = getattr(self._local, "client", None)
        if client is None:
            client = self._factory(self)
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def close(self) -> None:
        with self._clients_lock:
            for client in self._clients:
                client._http.close()
            self._clients.clear()

    def call(self, what: str, request: Callable[[Any], T]) -> T:
        """Run ``request`` with this thread's client: bounded token refresh, backoff on 45009.

        ``what`` names the call in error messages (``"user/info/batchget"``).
        """
        client = self.client()
        refreshes = limited = 0
        policy = self.policy
        while True:
            token = self.keeper.token(client)
            try:
                return request(client)
            except WeChatClientException as exc:
                code = exc.errcode
                if code in TOKEN_CODES:
                    if refreshes >= policy.max_token_refreshes:
                        raise TokenRejected(
                            f"{self.label} {what}: the access token was refused {refreshes + 1} times in a "
                            f"row, each time right after fetching a new one (errcode {code}: {exc.errmsg}). "
                            "Check that the account's id and secret belong to it and that no other system "
                            "fetches tokens for it; the sync stopped and resumes from its checkpoint.",
                            errcode=code,
                        ) from None
                    refreshes += 1
                    log.info("%s %s: token refused (errcode %s), fetching a new one", self.label, what, code)
                    self.keeper.refresh(client, token)
                    continue
                if code == RATE_LIMITED and limited < policy.rate_limit_retries:
                    delay = policy.backoff_seconds * 2**limited * (0.5 + self._random.random())
                    limited += 1
                    log.info(
                        "%s %s: rate limited (45009), retry %d in %.2f s", self.label, what, limited, delay
                    )
                    self.sleep(delay)
                    continue
                error = error_for(code, exc.errmsg, what, errors=self.errors, label=self.label)
                if code == RATE_LIMITED:
                    error = RateLimited(f"{error} after {limited} retries with backoff", errcode=code)
                raise error from None
            except requests.RequestException as exc:
                raise ConnectorError(
                    f"{self.label} {what}: cannot reach {self.api_base} ({type(exc).__name__})"
                ) from None
