"""The WeChat callback endpoint against a real uvicorn server, on SQLite and PostgreSQL.

Messages come from the simulator's push (signed, AES in compat/safe mode, as WeChat sends them) and
from wechatpy's own WeChatCrypto; forged, malformed, hostile, oversize and foreign messages must be
refused with nothing stored.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto

from connectors.wechat_sim import SimulatorServer, push_actions
from connectors.wechat_sim.population import Action
from connectors.wechat_sim.push import action_xml, original_id, sign
from scrm.store import Store
from tests.web.bot_env import count, load, running_bot, write_config

T0 = 1_790_000_000


def _openids(sim: SimulatorServer, n: int) -> list[str]:
    return list(sim.population.openids[:n])


def _script(sim: SimulatorServer) -> list[Action]:
    a, b = _openids(sim, 2)
    return [
        Action(T0, a, "subscribe", key="qrscene_store_bj_01"),
        Action(T0 + 5, a, "text", content="help", msgid=9_000_001),
        Action(T0 + 6, a, "text", content="when do you open?", msgid=9_000_002),
        Action(T0 + 7, a, "click", key="MENU_NEWS"),
        Action(T0 + 8, b, "subscribe"),
        Action(T0 + 9, a, "unsubscribe"),
    ]


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
def test_simulator_pushes_are_answered_and_stored_once(
    mode: str, wechat_sim: SimulatorServer, store: Store, tmp_path: Path
) -> None:
    settings = load(write_config(tmp_path, store.url, wechat_sim))
    script = _script(wechat_sim)
    creds = {
        "token": wechat_sim.token,
        "appid": wechat_sim.appid,
        "encoding_aes_key": wechat_sim.encoding_aes_key,
    }
    with running_bot(settings, store) as url:
        first = push_actions(url, script, mode=mode, seed=1, **creds)  # type: ignore[arg-type]
        again = push_actions(url, script, mode=mode, seed=2, **creds)  # type: ignore[arg-type]  (retries)
    assert [r.status for r in first + again] == [200] * 12
    replies = [parse_message(r.reply) if "[text]" in r.reply else r.reply for r in first]
    welcome, help_, default, click, plain_welcome, bye = replies
    assert "store_bj_01" in welcome.content and welcome.target == script[0].openid
    assert welcome.source == original_id(wechat_sim.appid)
    assert help_.content.startswith('Reply "price"')
    assert default.content.startswith("Thank you for your message")
    assert "<MsgType><![CDATA[news]]></MsgType>" in click  # a news reply, rendered with the context
    assert "This week at store_bj_01" in click and f"o={script[0].openid}" in click
    assert bye == "success"  # no rule for an unsubscribe: nothing to say
    assert "through" not in plain_welcome.content
    if mode != "plain":
        assert all("<Encrypt>" in r.body for r in first if r.reply.startswith("<xml>"))
    # each retry got the same reply (same content), and nothing was stored twice
    assert [r.reply.split("<CreateTime>")[0] for r in again] == [
        r.reply.split("<CreateTime>")[0] for r in first
    ]
    assert count(store, "inbound_message") == 6
    assert count(store, "interaction") == 6
    assert count(store, "follow") == 2
    assert count(store, "follow", "WHERE unsubscribed_at IS NOT NULL AND channel = 'store_bj_01'") == 1
    assert count(store, "follower_activity", "WHERE last_action_kind = 'unsubscribe'") == 1


def _signed(token: str, **extra: str) -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), "1234567890"
    return {"signature": sign(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, **extra}


def _text_xml(sim: SimulatorServer, msgid: int = 77, content: str = "help") -> str:
    return action_xml(
        Action(T0, _openids(sim, 1)[0], "text", content=content, msgid=msgid), original_id(sim.appid)
    )


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    )
    + "]><xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>"
    "<MsgType>text</MsgType><Content>&lol9;</Content><MsgId>1</MsgId></xml>"
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    "<xml><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType>"
    "<Content>&e;</Content><MsgId>2</MsgId></xml>"
)


def test_refused_requests_store_nothing(wechat_sim: SimulatorServer, store: Store, tmp_path: Path) -> None:
    settings = load(write_config(tmp_path, store.url, wechat_sim))
    token = wechat_sim.token
    good = _text_xml(wechat_sim)
    foreign = WeChatCrypto(token, wechat_sim.encoding_aes_key, "wx_another_app_01")
    params = _signed(token)
    sealed = foreign.encrypt_message(good, params["nonce"], params["timestamp"])
    msg_signature = _between(sealed, "MsgSignature")
    cases = [
        ("forged signature", {**params, "signature": "0" * 40}, good, 403),
        ("no signature", {"timestamp": params["timestamp"], "nonce": params["nonce"]}, good, 403),
        ("signed with another token", _signed("not-the-token"), good, 403),
        ("malformed XML", params, "<xml><FromUserName>b</From", 400),
        ("not XML", params, "hello", 400),
        ("billion laughs", params, BILLION_LAUGHS, 400),
        ("external entity", params, EXTERNAL_ENTITY, 400),
        ("oversize body", params, "<xml>" + "x" * 5000 + "</xml>", 413),
        ("another appid", {**params, "encrypt_type": "aes", "msg_signature": msg_signature}, sealed, 400),
        ("forged msg_signature", {**params, "encrypt_type": "aes", "msg_signature": "f" * 40}, sealed, 403),
        (
            "signed garbage ciphertext",
            {
                **params,
                "encrypt_type": "aes",
                "msg_signature": sign(token, params["timestamp"], params["nonce"], "QUJD"),
            },
            "<xml><Encrypt>QUJD</Encrypt></xml>",
            400,
        ),
        (
            "garbage ciphertext",
            {**params, "encrypt_type": "aes", "msg_signature": "f" * 40},
            "<xml><Encrypt>@@@</Encrypt></xml>",
            403,
        ),
    ]
    with running_bot(settings, store) as url, httpx.Client(timeout=5) as http:
        for name, query, body, status in cases:
            answer = http.post(url, params=query, content=body.encode())
            assert answer.status_code == status, (name, answer.text)
        unknown = http.post(url.replace("/brand", "/nobody"), params=params, content=good.encode())
        assert unknown.status_code == 404
    for table in ("inbound_message", "interaction", "customer", "identity"):
        assert count(store, table) == 0, table


def _between(xml: str, tag: str) -> str:
    return xml.split(f"<{tag}><![CDATA[")[1].split("]]>")[0]


def test_url_verification(wechat_sim: SimulatorServer, store: Store, tmp_path: Path) -> None:
    settings = load(write_config(tmp_path, store.url, wechat_sim))
    with running_bot(settings, store) as url:
        ok = httpx.get(url, params=_signed(wechat_sim.token, echostr="echo-4242"))
        forged = httpx.get(url, params={**_signed(wechat_sim.token), "signature": "1" * 40, "echostr": "x"})
    assert (ok.status_code, ok.text) == (200, "echo-4242")
    assert forged.status_code == 403


def test_wechatpy_crypto_as_the_sender(wechat_sim: SimulatorServer, store: Store, tmp_path: Path) -> None:
    """wechatpy's own WeChatCrypto encrypts the request and decrypts the reply (safe mode)."""
    settings = load(write_config(tmp_path, store.url, wechat_sim))
    crypto = WeChatCrypto(wechat_sim.token, wechat_sim.encoding_aes_key, wechat_sim.appid)
    params = _signed(wechat_sim.token)
    envelope = crypto.encrypt_message(_text_xml(wechat_sim, msgid=555), params["nonce"], params["timestamp"])
    sealed = _between(envelope, "Encrypt")
    body = f"<xml><ToUserName><![CDATA[x]]></ToUserName><Encrypt><![CDATA[{sealed}]]></Encrypt></xml>"
    query = {**params, "encrypt_type": "aes", "msg_signature": _between(envelope, "MsgSignature")}
    with running_bot(settings, store) as url:
        answer = httpx.post(url, params=query, content=body.encode())
    assert answer.status_code == 200
    reply_sig = _between(answer.text, "MsgSignature")
    timestamp = answer.text.split("<TimeStamp>")[1].split("</TimeStamp>")[0]
    nonce = _between(answer.text, "Nonce")
    reply = parse_message(crypto.decrypt_message(answer.text, reply_sig, timestamp, nonce))
    assert reply.content.startswith('Reply "price"')
    assert count(store, "inbound_message", "WHERE dedup_key = 'msg:555'") == 1
