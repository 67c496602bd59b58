"""Push follower actions to an account's callback URL, as WeChat does.

For each action WeChat POSTs an XML message (``text``, or an ``event``: ``subscribe`` with
``EventKey`` ``qrscene_<scene>`` when it came through a code, ``SCAN``, ``CLICK``, ``unsubscribe``)
to the callback URL with ``signature``, ``timestamp``, ``nonce`` and ``openid`` in the query. In safe
mode the body carries only ``ToUserName`` and ``Encrypt`` (AES, WeChat's algorithm as wechatpy's
``WeChatCrypto`` implements it) and the query adds ``encrypt_type=aes`` and ``msg_signature``;
compatible mode carries the plain fields and ``Encrypt`` together. When no answer comes within
``retry_after`` seconds (WeChat: 5) the same message is sent again, up to ``retries`` times (3).
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import httpx
from wechatpy.crypto import WeChatCrypto

from connectors.wechat_sim.population import Action

__all__ = ["PushResult", "action_xml", "original_id", "push_actions", "sign"]

Mode = Literal["plain", "compat", "safe"]
_EVENTS = {"subscribe": "subscribe", "scan": "SCAN", "click": "CLICK", "unsubscribe": "unsubscribe"}


@dataclass(frozen=True)
class PushResult:
    """What became of one pushed action.

    ``status`` is the HTTP status of the answer (None when every attempt timed out or failed),
    ``body`` the raw answer, ``reply`` the reply XML (decrypted in safe/compat mode), ``attempts``
    how many times the message was sent.
    """

    action: Action
    status: int | None
    body: str
    reply: str
    attempts: int


def original_id(appid: str) -> str:
    """The account's original id (``gh_`` + 12 hex), the ``ToUserName`` of every message."""
    return "gh_" + hashlib.sha1(appid.encode()).hexdigest()[:12]


def sign(token: str, *parts: str) -> str:
    """WeChat's signature: SHA-1 of the sorted, concatenated parts.

    Examples
    --------
    >>> sign("token", "1409304348", "xxxxxx")
    'f43b4a6571a6552356f482636e5a77e7fa33dcc9'
    """
    return hashlib.sha1("".join(sorted([token, *parts])).encode()).hexdigest()


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def action_xml(action: Action, to_user: str) -> str:
    """The XML message WeChat sends for ``action``."""
    fields = [
        f"<ToUserName>{_cdata(to_user)}</ToUserName>",
        f"<FromUserName>{_cdata(action.openid)}</FromUserName>",
        f"<CreateTime>{action.time}</CreateTime>",
    ]
    if action.kind == "text":
        fields += [
            f"<MsgType>{_cdata('text')}</MsgType>",
            f"<Content>{_cdata(action.content)}</Content>",
            f"<MsgId>{action.msgid}</MsgId>",
        ]
    elif action.kind in _EVENTS:
        fields += [f"<MsgType>{_cdata('event')}</MsgType>", f"<Event>{_cdata(_EVENTS[action.kind])}</Event>"]
        if action.key or action.kind != "unsubscribe":
            fields.append(f"<EventKey>{_cdata(action.key)}</EventKey>")
        if action.kind == "scan" or action.key.startswith("qrscene_"):
            ticket = hashlib.sha1(action.key.encode()).hexdigest()
            fields.append(f"<Ticket>{_cdata(ticket)}</Ticket>")
    else:
        raise ValueError(f"cannot push an action of kind {action.kind!r}")
    return "<xml>" + "".join(fields) + "</xml>"


def _encrypt(crypto: WeChatCrypto, xml: str, nonce: str, timestamp: str) -> tuple[str, str]:
    """(Encrypt, MsgSignature) for ``xml``, through wechatpy's public encrypt_message."""
    envelope = crypto.encrypt_message(xml, nonce, timestamp)
    encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", envelope, re.S)
    signature = re.search(r"<MsgSignature><!\[CDATA\[(.*?)\]\]></MsgSignature>", envelope, re.S)
    assert encrypt and signature
    return encrypt.group(1), signature.group(1)


def push_actions(
    url: str,
    actions: Iterable[Action],
    *,
    token: str,
    appid: str,
    encoding_aes_key: str | None = None,
    mode: Mode = "plain",
    retry_after: float = 5.0,
    retries: int = 3,
    seed: int | None = None,
) -> list[PushResult]:
    """POST each action to ``url`` as WeChat would, in order; return what each answered.

    Parameters
    ----------
    url : str
        The callback URL (the bot's endpoint).
    actions : iterable of Action
        E.g. ``sim.actions(since, until)``.
    token, appid, encoding_aes_key : str
        The account's callback credentials (the key is needed in ``safe`` and ``compat`` mode).
    mode : "plain", "compat" or "safe"
        WeChat's message encryption modes.
    retry_after : float
        Seconds to wait for an answer before sending again (WeChat: 5).
    retries : int
        How many times to send again (WeChat: 3).
    seed : int, optional
        Seed for the nonces (reproducible requests).
    """
    if mode not in ("plain", "compat", "safe"):
        raise ValueError(f"mode must be plain, compat or safe, not {mode!r}")
    crypto = None
    if mode != "plain":
        if not encoding_aes_key:
            raise ValueError(f"{mode} mode needs the encoding_aes_key")
        crypto = WeChatCrypto(token, encoding_aes_key, appid)
    rng = random.Random(seed)
    to_user = original_id(appid)
    results: list[PushResult] = []
    with httpx.Client(timeout=httpx.Timeout(retry_after)) as http:
        for action in actions:
            xml = action_xml(action, to_user)
            timestamp = str(int(time.time()))
            nonce = str(rng.randrange(10**9, 10**10))
            params = {"signature": sign(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
            params["openid"] = action.openid
            body = xml
            if crypto is not None:
                encrypt, msg_signature = _encrypt(crypto, xml, nonce, timestamp)
                params.update(encrypt_type="aes", msg_signature=msg_signature)
                if mode == "safe":
                    head = f"<ToUserName>{_cdata(to_user)}</ToUserName>"
                    body = f"<xml>{head}<Encrypt>{_cdata(encrypt)}</Encrypt></xml>"
                else:
                    body = xml[: -len("</xml>")] + f"<Encrypt>{_cdata(encrypt)}</Encrypt></xml>"
            results.append(_post(http, url, params, body, action, crypto, retries))
    return results


def _post(
    http: httpx.Client,
    url: str,
    params: dict[str, str],
    body: str,
    action: Action,
    crypto: WeChatCrypto | None,
    retries: int,
) -> PushResult:
    attempts = 0
    for _ in range(retries + 1):
        attempts += 1
        try:
            answer = http.post(
                url, params=params, content=body.encode(), headers={"Content-Type": "text/xml"}
            )
        except httpx.TransportError:
            continue
        text = answer.text
        reply = text
        if crypto is not None and "<Encrypt>" in text:
            found = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", text, re.S)
            sig = re.search(r"<MsgSignature><!\[CDATA\[(.*?)\]\]></MsgSignature>", text, re.S)
            ts = re.search(r"<TimeStamp>(.*?)</TimeStamp>", text, re.S)
            nonce = re.search(r"<Nonce><!\[CDATA\[(.*?)\]\]></Nonce>", text, re.S)
            if found and sig and ts and nonce:
                reply = crypto.decrypt_message(text, sig.group(1), ts.group(1), nonce.group(1))
        return PushResult(action, answer.status_code, text, reply, attempts)
    return PushResult(action, None, "", "", attempts)
