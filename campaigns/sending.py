"""One send through a connector, with retries for temporary refusals and none for permanent ones.

- ``45009`` (rate limit or daily quota; the connector has already backed off) and a connection that
  could not even be opened are retried ``send_retries`` times with exponential backoff;
- ``43004`` (not a follower) and ``40003`` (invalid openid) fail at once: the caller marks the follower
  unsubscribed / the openid invalid;
- ``45015`` (outside the customer-service window) fails at once, or falls back to the campaign's
  template message when it has one;
- a network error after the request may have left (a timeout waiting for the answer, a connection
  reset) is *in doubt*: the message may have been delivered, so it is recorded as ``unknown`` and
  never sent again automatically (WeChat's customer-service and template APIs have no idempotency
  key; a mass send has its ``clientmsgid`` and is simply repeated).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from connectors.base import Connector
from scrm.errors import ConnectorError, OutsideWindow, RateLimited, RecipientRefused

__all__ = ["Outcome", "client_msg_id", "send_batch", "send_one"]


@dataclass(frozen=True)
class Outcome:
    """What became of one delivery: ``sent``, ``failed`` or ``unknown``, with the channel used."""

    delivery_id: int
    status: str
    channel: str
    msg_id: str = ""
    errcode: int | None = None
    error: str = ""
    reason: str = ""


def client_msg_id(run_key: str, batch: int) -> str:
    """The ``clientmsgid`` of one mass-send batch of a run (at most 64 characters, as WeChat allows).

    >>> client_msg_id("spring@2026-05-01T02:00:00Z", 0) == client_msg_id("spring@2026-05-01T02:00:00Z", 0)
    True
    >>> len(client_msg_id("x" * 300, 12))
    40
    """
    return hashlib.sha1(f"{run_key}#{batch}".encode()).hexdigest()


def _never_left(exc: BaseException) -> bool:
    """Whether a network error happened before the request could leave (safe to send again)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, requests.exceptions.ConnectTimeout):
            return True
        if isinstance(seen, requests.exceptions.ConnectionError) and (
            "NewConnectionError" in repr(seen.args) or "Connection refused" in str(seen)
        ):
            return True
        seen = seen.__context__
    return False


@dataclass(frozen=True)
class Retry:
    retries: int
    backoff: float
    sleep: Callable[[float], None] = time.sleep

    def wait(self, attempt: int) -> None:
        self.sleep(self.backoff * 2**attempt)


def _retrying(call: Callable[[], str], retry: Retry) -> tuple[str, str, ConnectorError | None]:
    """(status, msg_id, error) of ``call`` with the retry rules above."""
    attempt = 0
    while True:
        try:
            return "sent", call(), None
        except (OutsideWindow, RecipientRefused) as exc:
            return "failed", "", exc
        except RateLimited as exc:
            if attempt >= retry.retries:
                return "failed", "", exc
        except ConnectorError as exc:
            if exc.errcode is not None:
                return "failed", "", exc
            if not _never_left(exc):
                return "unknown", "", exc
            if attempt >= retry.retries:
                return "failed", "", exc
        retry.wait(attempt)
        attempt += 1


def _reason(exc: ConnectorError | None) -> str:
    if exc is None:
        return ""
    return {
        43004: "unsubscribed",
        40003: "invalid_openid",
        45015: "outside_window",
        45047: "outside_window",
        45009: "rate_limited",
    }.get(exc.errcode or 0, "network" if exc.errcode is None else "refused")


def _outcome(
    delivery_id: int, status: str, channel: str, msg_id: str, error: ConnectorError | None
) -> Outcome:
    if error is None:
        return Outcome(delivery_id, status, channel, msg_id)
    return Outcome(delivery_id, status, channel, msg_id, error.errcode, str(error), _reason(error))


def send_one(
    connector: Connector,
    delivery_id: int,
    openid: str,
    channel: str,
    payload: Mapping[str, Any],
    *,
    template_id: str,
    url: str,
    retry: Retry,
) -> Outcome:
    """Send one customer-service or template message (text falls back to template on 45015)."""

    def text() -> str:
        return connector.send_text(openid, str(payload["text"])).msg_id

    def template() -> str:
        return connector.send_template(openid, template_id, payload["fields"], url or None).msg_id

    status, msg_id, error = _retrying(text if channel == "text" else template, retry)
    if channel == "text" and isinstance(error, OutsideWindow) and template_id and "fields" in payload:
        channel = "template"
        status, msg_id, error = _retrying(template, retry)
    return _outcome(delivery_id, status, channel, msg_id, error)


def send_batch(
    connector: Connector,
    ids: Sequence[int],
    openids: Sequence[str],
    channel: str,
    *,
    text: str = "",
    client_msg_id: str = "",
    tag_id: int = 0,
    to_tag: bool = False,
    retry: Retry,
) -> list[Outcome]:
    """A mass send (one request for the batch, idempotent by ``client_msg_id``) or a tag change.

    With ``to_tag`` the mass send goes to everyone carrying ``tag_id`` on the platform (``sendall``).
    """

    def call() -> str:
        if channel == "mass" and to_tag:
            return connector.send_mass_text(text, tag_id=tag_id, client_msg_id=client_msg_id).msg_id
        if channel == "mass":
            return connector.send_mass_text(
                text, recipients=list(openids), client_msg_id=client_msg_id
            ).msg_id
        if channel == "tag":
            connector.tag_followers(tag_id, list(openids))
        else:
            connector.untag_followers(tag_id, list(openids))
        return ""

    status, msg_id, error = _retrying(call, retry)
    if status == "unknown" and channel != "mass":
        status = "failed"  # a tag change can be repeated safely; the next run does it
    return [_outcome(i, status, channel, msg_id, error) for i in ids]
