"""The bot's WeChat callback endpoint: ``/wechat/<account name>``, one per account with a ``token``.

GET answers WeChat's URL verification (``echostr``). POST takes a message or event in plaintext,
compatible or safe mode and answers within WeChat's 5 seconds:

1. the body is read up to ``[bot] max_body_bytes`` (more: 413) and the signature is checked before
   anything is parsed or stored (forged or missing: 403); bad, hostile or foreign XML: 400;
2. the reply rules pick a rule; its reply is rendered (follower context, template) in a worker thread
   within the rule's ``timeout_seconds``. When that takes longer, the answer is ``success`` and the
   reply is sent afterwards as a customer-service message (unless the follower has left);
3. the record is stored once, in a group with the records of the requests that arrived with it
   (:class:`~scrm.loop_commit.LoopCommit` on SQLite, :class:`~scrm.group_commit.GroupCommit` on
   PostgreSQL; unique per account and MsgId or (openid, CreateTime)) with its reply; a retry, in
   this process or another, gets the stored reply.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from campaigns.render import Renderer
from campaigns.rules import Answer, Rule, Rulebook
from connectors.wechat import WeChatConnector
from connectors.wechat_callback import Reply, WeChatCallback
from scrm.config import Settings, WeChatAccount
from scrm.errors import CallbackRejected, ScrmError, SignatureRejected
from scrm.group_commit import GroupCommit, InboundWriter
from scrm.inbound import (
    FollowerContext,
    InboundRecord,
    follower_context,
    is_following,
    set_status,
)
from scrm.loop_commit import LoopCommit
from scrm.store import Store

__all__ = ["WeChatBot"]

log = logging.getLogger(__name__)


@dataclass
class _Account:
    name: str
    settings: WeChatAccount
    callback: WeChatCallback
    connector: WeChatConnector | None = None


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _as_text(reply: Reply) -> str:
    """A reply as a customer-service text (news: each article's title and link)."""
    if reply.text:
        return reply.text
    return "\n".join(f"{a.title} {a.url}".strip() for a in reply.articles)


class WeChatBot:
    """The callback endpoints of every configured WeChat account with a ``token``."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        template_globals: Mapping[str, Callable[..., Any] | Any] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        bot = settings.bot
        folder = (settings.base_dir / bot.templates) if bot.templates else None
        self.rulebook = Rulebook(bot, settings.scrm.tz, Renderer(folder, globals=template_globals))
        self.max_body = bot.max_body_bytes
        self.commit: InboundWriter = (
            LoopCommit(store)  # SQLite works in this process: written from the event loop
            if store.dialect == "sqlite"
            else GroupCommit(store, window=bot.group_commit_ms / 1000)  # a server: a writer thread
        )
        self.pool = ThreadPoolExecutor(16, thread_name_prefix="scrm-bot")
        self.accounts: dict[str, _Account] = {}
        for name, account in settings.accounts.items():
            if account.platform != "wechat" or account.token is None:
                continue
            key = account.encoding_aes_key.get_secret_value() if account.encoding_aes_key else None
            callback = WeChatCallback(
                account.token.get_secret_value(), account.appid, key, max_body=self.max_body
            )
            self.accounts[name] = _Account(name, account, callback)

    def routes(self) -> list[Route]:
        return [Route("/wechat/{account}", self.endpoint, methods=["GET", "POST"])]

    def close(self) -> None:
        self.commit.close()
        self.pool.shutdown(wait=True)
        for account in self.accounts.values():
            if account.connector is not None:
                account.connector.close()

    async def endpoint(self, request: Request) -> Response:
        account = self.accounts.get(request.path_params["account"])
        if account is None:
            return PlainTextResponse("no such account (or it has no callback token)", status_code=404)
        params = dict(request.query_params)
        if request.method == "GET":
            try:
                return PlainTextResponse(account.callback.verify_url(params))
            except SignatureRejected as exc:
                return PlainTextResponse(str(exc), status_code=403)
        try:
            body = await _read_body(request, self.max_body)
            record, _mode = account.callback.open(params, body)
        except _TooLarge:
            return PlainTextResponse(f"body over {self.max_body} bytes", status_code=413)
        except SignatureRejected as exc:
            return PlainTextResponse(str(exc), status_code=403)
        except CallbackRejected as exc:
            return PlainTextResponse(str(exc), status_code=400)
        return await self._handle(account, record, params)

    async def _handle(self, account: _Account, record: InboundRecord, params: dict[str, str]) -> Response:
        rule = self.rulebook.match(record)
        answer, deferred, job = Answer("", None), False, None
        if rule is not None and self.rulebook.is_instant(rule):
            answer = self.rulebook.answer(record, FollowerContext(record.openid).as_dict(), rule=rule)
        elif rule is not None:
            job = self.pool.submit(self._answer, record, rule)
            try:
                answer = await asyncio.wait_for(
                    asyncio.shield(asyncio.wrap_future(job)), rule.settings.timeout_seconds
                )
            except TimeoutError:
                deferred = True
                answer = Answer(rule.name, None)
        xml = "" if deferred else account.callback.reply_xml(answer.reply, record)
        status = "deferred" if deferred else ("replied" if xml else "none")
        try:
            outcome = await self.commit.submit_async(record, answer.rule, xml, status)
        except Exception:
            log.exception("storing %s %s of account %s failed", record.kind, record.dedup_key, account.name)
            return PlainTextResponse("the store is not available", status_code=503)
        if deferred and job is not None and not outcome.duplicate:
            log.info("rule %r took over its budget: its reply goes out as a service message", answer.rule)
            job.add_done_callback(lambda done: self.pool.submit(self._deliver, account, record, done))
        sealed = account.callback.seal(outcome.reply, params)
        media = "application/xml" if outcome.reply else "text/plain"
        return Response(sealed, media_type=media)

    def _answer(self, record: InboundRecord, rule: Rule) -> Answer:
        if self.rulebook.needs_follower(rule):
            context = follower_context(self.store, record.appid, record.openid)
        else:
            context = FollowerContext(record.openid)  # the reply reads nothing stored
        return self.rulebook.answer(record, context.as_dict(), rule=rule)

    def _deliver(self, account: _Account, record: InboundRecord, done: Future[Answer]) -> None:
        """Send a reply that missed the callback's budget as a customer-service message."""
        status = "failed"
        try:
            answer = done.result()
            if answer.reply is None:
                status = "none"
            elif not is_following(self.store, record.appid, record.openid):
                status = "stopped"  # they unsubscribed meanwhile: no more messages
            else:
                if account.connector is None:
                    account.connector = WeChatConnector(account.settings, self.settings.sync)
                account.connector.send_text(record.openid, _as_text(answer.reply))
                status = "sent"
        except ScrmError as exc:
            log.error("service message for %s (rule reply) failed: %s", record.dedup_key, exc)
        except Exception:
            log.exception("service message for %s failed", record.dedup_key)
        try:
            set_status(self.store, record.appid, record.dedup_key, status)
        except Exception:
            log.exception("recording the status of %s failed", record.dedup_key)
