"""WeChat callbacks: verify, decrypt and parse what WeChat pushes to the bot; build its replies.

WeChat calls the bot's URL with ``signature``, ``timestamp`` and ``nonce`` in the query (the SHA-1 of
the sorted token, timestamp and nonce). In plaintext mode the body is the message's XML; in safe mode
(``encrypt_type=aes``) it carries only ``Encrypt`` (AES-CBC with the account's EncodingAESKey, the
appid sealed inside) signed by ``msg_signature``; compatible mode carries both. :class:`WeChatCallback`

1. refuses a body over ``max_body`` bytes (:class:`~scrm.errors.CallbackRejected`, before anything);
2. checks ``signature`` before looking at the body (:class:`~scrm.errors.SignatureRejected`);
3. refuses any ``<!DOCTYPE`` (no entity can be declared, so no "billion laughs" and no external entity;
   xmltodict, under wechatpy, refuses entity declarations too);
4. in safe and compatible mode checks ``msg_signature``, decrypts, and refuses another appid;
5. parses the message with wechatpy into a plain :class:`~scrm.inbound.InboundRecord`.

Replies (:class:`Reply`: text, or news articles) are rendered as WeChat's reply XML and encrypted
whenever the request was (``encrypt_type=aes``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from xml.parsers.expat import ExpatError

from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import ArticlesReply, TextReply
from wechatpy.utils import check_signature

from scrm.errors import CallbackRejected, SignatureRejected
from scrm.inbound import InboundRecord

__all__ = ["Article", "Mode", "Reply", "WeChatCallback", "mode_of"]

Mode = Literal["plain", "compat", "safe"]
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_EVENT_KINDS = {
    "subscribe": "subscribe",
    "unsubscribe": "unsubscribe",
    "subscribe_scan": "subscribe",
    "scan": "scan",
    "click": "click",
    "view": "view",
}
_MESSAGE_KINDS = {"text", "image", "voice", "video", "shortvideo", "location", "link"}


@dataclass(frozen=True)
class Article:
    """One article of a news reply."""

    title: str
    description: str = ""
    url: str = ""
    image: str = ""


@dataclass(frozen=True)
class Reply:
    """What the bot answers: a text, or news articles (WeChat shows up to 8)."""

    text: str = ""
    articles: tuple[Article, ...] = ()


def mode_of(params: Mapping[str, str]) -> Mode:
    """``safe`` when the query says ``encrypt_type=aes`` (compat is told by the body), else ``plain``."""
    return "safe" if params.get("encrypt_type", "raw").lower() == "aes" else "plain"


def _kind(message: Any) -> tuple[str, str, str]:
    """(kind, scene, key) of a parsed wechatpy message."""
    if message.type == "event":
        event = str(getattr(message, "event", "")).lower()
        kind = _EVENT_KINDS.get(event, "other")
        scene = str(getattr(message, "scene_id", "") or "") if kind in ("subscribe", "scan") else ""
        key = str(getattr(message, "key", "") or "") if kind in ("click", "view") else ""
        if kind == "view":
            key = str(getattr(message, "url", "") or key)
        return kind, scene, key
    kind = message.type if message.type in _MESSAGE_KINDS else "other"
    return kind, "", ""


class WeChatCallback:
    """The callback side of one WeChat Official Account.

    Parameters
    ----------
    token
        The callback token set in the account's console.
    appid
        The account's appid (safe mode checks that a message was encrypted for it).
    encoding_aes_key
        The 43-character EncodingAESKey (needed for safe and compatible mode).
    max_body
        Largest request body accepted, in bytes.
    """

    def __init__(
        self, token: str, appid: str, encoding_aes_key: str | None = None, *, max_body: int = 65_536
    ) -> None:
        self.token = token
        self.appid = appid
        self.max_body = max_body
        self.crypto = WeChatCrypto(token, encoding_aes_key, appid) if encoding_aes_key else None

    def verify_signature(self, params: Mapping[str, str]) -> None:
        """Raise :class:`SignatureRejected` unless ``signature`` signs ``timestamp`` and ``nonce``."""
        signature, timestamp, nonce = (params.get(k, "") for k in ("signature", "timestamp", "nonce"))
        if not (signature and timestamp and nonce):
            raise SignatureRejected("signature, timestamp and nonce are required")
        try:
            check_signature(self.token, signature, timestamp, nonce)
        except InvalidSignatureException:
            raise SignatureRejected("the signature does not match the account's token") from None

    def verify_url(self, params: Mapping[str, str]) -> str:
        """URL verification (GET): check the signature and return ``echostr``."""
        self.verify_signature(params)
        return params.get("echostr", "")

    def open(self, params: Mapping[str, str], body: bytes) -> tuple[InboundRecord, Mode]:
        """Verify, decrypt and parse one pushed message.

        Raises
        ------
        SignatureRejected
            ``signature`` (or ``msg_signature``) missing or wrong.
        CallbackRejected
            Body too large, not well-formed XML, a DOCTYPE or entity, another appid, not decryptable.
        """
        if len(body) > self.max_body:
            raise CallbackRejected(f"body of {len(body)} bytes is over the limit of {self.max_body}")
        self.verify_signature(params)
        if _DOCTYPE.search(body):
            raise CallbackRejected("XML with a DOCTYPE or entity declaration is refused")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise CallbackRejected("the body is not UTF-8") from None
        mode: Mode = "plain"
        if mode_of(params) == "safe":
            text, mode = self._decrypt(params, text)
        try:
            message = parse_message(text)
        except (ExpatError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CallbackRejected(f"the message is not valid WeChat XML ({type(exc).__name__})") from None
        return self._record(message), mode

    def _decrypt(self, params: Mapping[str, str], text: str) -> tuple[str, Mode]:
        if self.crypto is None:
            raise CallbackRejected("an encrypted message, but the account has no encoding_aes_key")
        msg_signature = params.get("msg_signature", "")
        if not msg_signature:
            raise SignatureRejected("msg_signature is required with encrypt_type=aes")
        mode: Mode = "compat" if "<MsgType>" in text or "<FromUserName>" in text else "safe"
        try:
            plain = self.crypto.decrypt_message(text, msg_signature, params["timestamp"], params["nonce"])
        except InvalidSignatureException:
            raise SignatureRejected("msg_signature does not match the encrypted message") from None
        except InvalidAppIdException:
            raise CallbackRejected("the message was encrypted for another appid") from None
        except Exception as exc:  # wechatpy raises what base64, AES, struct and expat raise
            raise CallbackRejected(f"the encrypted message cannot be read ({type(exc).__name__})") from None
        if _DOCTYPE.search(plain.encode("utf-8", "replace")):
            raise CallbackRejected("XML with a DOCTYPE or entity declaration is refused")
        return str(plain), mode

    def _record(self, message: Any) -> InboundRecord:
        openid = str(getattr(message, "source", "") or "")
        if not openid:
            raise CallbackRejected("the message has no FromUserName")
        kind, scene, key = _kind(message)
        created = datetime.fromtimestamp(int(message.time), UTC)
        msg_id = int(message.id or 0) if message.type != "event" else 0
        content = str(getattr(message, "content", "") or "") if kind == "text" else ""
        return InboundRecord(
            platform="wechat",
            appid=self.appid,
            openid=openid,
            kind=kind,
            created=created,
            msg_id=msg_id,
            content=content,
            scene=scene,
            key=key,
            to_user=str(getattr(message, "target", "") or ""),
        )

    def reply_xml(self, reply: Reply | None, record: InboundRecord) -> str:
        """WeChat's reply XML for ``reply`` to ``record`` (plain; ``""`` when there is nothing to say)."""
        if reply is None or not (reply.text or reply.articles):
            return ""
        common = {"source": record.to_user, "target": record.openid, "time": int(time.time())}
        if reply.articles:
            news = ArticlesReply(**common)
            for a in reply.articles[:8]:
                news.add_article(
                    {"title": a.title, "description": a.description, "url": a.url, "image": a.image}
                )
            return str(news.render())
        return str(TextReply(content=reply.text, **common).render())

    def seal(self, xml: str, params: Mapping[str, str]) -> str:
        """The HTTP body for a reply: ``success`` when empty, encrypted when the request was."""
        if not xml:
            return "success"
        if mode_of(params) == "safe" and self.crypto is not None:
            return str(self.crypto.encrypt_message(xml, params.get("nonce", ""), params.get("timestamp")))
        return xml
