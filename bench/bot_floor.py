"""The floor of bench/bench_bot.py: a bare Starlette endpoint that only verifies, decrypts, replies and
encrypts with wechatpy, storing nothing (safe mode). Credentials from BOT_TOKEN, BOT_AES_KEY, BOT_APPID.

    uvicorn --workers 2 --app-dir bench bot_floor:app
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.replies import create_reply
from wechatpy.utils import check_signature

TOKEN = os.environ["BOT_TOKEN"]
CRYPTO = WeChatCrypto(TOKEN, os.environ["BOT_AES_KEY"], os.environ["BOT_APPID"])
HELP = 'Reply "price" for our price list, "store" for the nearest store, or just ask.'


async def callback(request: Request) -> Response:
    q = request.query_params
    check_signature(TOKEN, q["signature"], q["timestamp"], q["nonce"])
    xml = CRYPTO.decrypt_message(await request.body(), q["msg_signature"], q["timestamp"], q["nonce"])
    message = parse_message(xml)
    reply = create_reply(HELP if message.content.strip().lower() == "help" else "", message).render()
    return Response(CRYPTO.encrypt_message(reply, q["nonce"], q["timestamp"]), media_type="application/xml")


app = Starlette(routes=[Route("/wechat/brand", callback, methods=["POST"])])
