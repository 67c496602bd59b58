"""Pushing follower actions to a callback URL as WeChat does, checked by a receiver built on wechatpy."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.replies import create_reply
from wechatpy.utils import check_signature

from connectors.wechat_sim import Action, BackgroundServer, Population, push_actions
from connectors.wechat_sim.state import Credentials

CREDS = Credentials.generate(appid="wxsim0000000push1")


def kind(message: Any) -> str:
    """``text``, or the event's name as wechatpy gives it (``subscribe_scan``, ``click``...)."""
    return str(message.event if message.type == "event" else message.type)


class Receiver:
    """A bot's callback endpoint: verifies, decrypts, parses, answers (optionally too slowly)."""

    def __init__(self, *, slow_attempts: int = 0, delay: float = 0.0) -> None:
        self.crypto = WeChatCrypto(CREDS.token, CREDS.encoding_aes_key, CREDS.appid)
        self.messages: list[Any] = []
        self.bodies: list[bytes] = []
        self.attempts: Counter[bytes] = Counter()
        self.slow_attempts, self.delay = slow_attempts, delay
        self.app = Starlette(routes=[Route("/wechat", self.callback, methods=["POST"])])

    async def callback(self, request: Request) -> Response:
        q = request.query_params
        check_signature(CREDS.token, q["signature"], q["timestamp"], q["nonce"])
        body = await request.body()
        self.bodies.append(body)
        self.attempts[body] += 1
        if self.attempts[body] <= self.slow_attempts:
            await asyncio.sleep(self.delay)
            return Response("too late")
        safe = q.get("encrypt_type") == "aes"
        xml = (
            self.crypto.decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"])
            if safe
            else body
        )
        message = parse_message(xml)
        assert message.source == q["openid"]
        self.messages.append(message)
        reply = create_reply(f"got {kind(message)}", message).render()
        if safe:
            reply = self.crypto.encrypt_message(reply, q["nonce"], q["timestamp"])
        return Response(reply, media_type="application/xml")


def one_of_each_kind(pop: Population) -> list[Action]:
    picks: dict[str, Action] = {}
    for a in pop.actions:
        kind = "subscribe_qr" if a.kind == "subscribe" and a.key else a.kind
        picks.setdefault(kind, a)
    return [picks[k] for k in ("text", "subscribe", "subscribe_qr", "scan", "click", "unsubscribe")]


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
def test_push_is_signed_encrypted_and_parsed_by_wechatpy(wechat_population: Population, mode: str) -> None:
    actions = one_of_each_kind(wechat_population)
    receiver = Receiver()
    with BackgroundServer(receiver.app) as server:
        results = push_actions(
            server.base_url + "/wechat",
            actions,
            token=CREDS.token,
            appid=CREDS.appid,
            encoding_aes_key=CREDS.encoding_aes_key,
            mode=mode,  # type: ignore[arg-type]
        )
    got = receiver.messages
    assert [kind(m) for m in got] == ["text", "subscribe", "subscribe_scan", "scan", "click", "unsubscribe"]
    assert [m.source for m in got] == [a.openid for a in actions]
    assert [m.create_time.timestamp() for m in got] == [a.time for a in actions]
    text, _, qr, scan, click, _ = got
    assert text.content == actions[0].content and text.id == actions[0].msgid
    assert qr.scene_id == actions[2].key.removeprefix("qrscene_") and scan.scene_id == actions[3].key
    assert click.key == actions[4].key
    assert [(r.status, r.attempts) for r in results] == [(200, 1)] * 6
    assert [parse_message(r.reply).content for r in results] == [f"got {kind(m)}" for m in got]
    if mode == "safe":
        assert all(b"<Encrypt>" in b and b"<FromUserName>" not in b for b in receiver.bodies)
    elif mode == "compat":
        assert all(b"<Encrypt>" in b and b"<FromUserName>" in b for b in receiver.bodies)


def test_push_retries_the_same_message_when_the_answer_is_late(wechat_population: Population) -> None:
    text = next(a for a in wechat_population.actions if a.kind == "text")
    receiver = Receiver(slow_attempts=1, delay=0.5)
    with BackgroundServer(receiver.app) as server:
        (result,) = push_actions(
            server.base_url + "/wechat", [text], token=CREDS.token, appid=CREDS.appid, retry_after=0.2
        )
    assert (result.status, result.attempts) == (200, 2)
    assert len(receiver.bodies) == 2 and receiver.bodies[0] == receiver.bodies[1]
    assert [m.id for m in receiver.messages] == [text.msgid]


def test_push_gives_up_after_three_retries(wechat_population: Population) -> None:
    click = next(a for a in wechat_population.actions if a.kind == "click")
    receiver = Receiver(slow_attempts=10, delay=0.4)
    with BackgroundServer(receiver.app) as server:
        (result,) = push_actions(
            server.base_url + "/wechat", [click], token=CREDS.token, appid=CREDS.appid, retry_after=0.1
        )
    assert (result.status, result.attempts, result.reply) == (None, 4, "")
    assert len(receiver.bodies) == 4 and len(set(receiver.bodies)) == 1


def test_push_needs_the_key_in_safe_mode(wechat_population: Population) -> None:
    with pytest.raises(ValueError, match="encoding_aes_key"):
        push_actions("http://127.0.0.1:9/", wechat_population.actions[:1], token="t", appid="a", mode="safe")
