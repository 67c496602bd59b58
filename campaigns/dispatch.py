"""Exactly-once campaign runs: a unique run key, deliveries planned first, claimed, sent, recorded.

1. **The run.** Its key is the campaign's name and its scheduled time (``name@2026-05-01T02:00:00Z``)
   or the event that triggered it. ``campaign_run.run_key`` is unique: the process that inserts it also
   inserts every planned delivery, in the same transaction; any other process firing the same run
   finds it and only helps to send. A run whose plan did not commit left nothing behind.
2. **Claim.** A dispatcher takes due deliveries in small chunks, ``planned -> sending`` with its owner
   id (host, pid) in one ``UPDATE ... WHERE status = 'planned' RETURNING`` (PostgreSQL: ``FOR UPDATE
   SKIP LOCKED``), so two dispatchers never hold the same delivery.
3. **Send, then record** ``sent`` / ``failed`` / ``unknown``, together with the next chunk's claim.
4. **After a crash** (kill -9 at any moment), deliveries still ``sending`` whose owner is dead (same
   host) or whose lease expired (``[campaigns] lease_seconds``) are *in doubt*: the request may or may
   not have reached WeChat. Customer-service and template messages have no idempotency key on WeChat,
   so they become ``unknown``: reported, counted against caps, never sent twice. At most two chunks
   (``2 x 2 x concurrency`` deliveries) can be in doubt. Mass sends are sent again with the same
   ``clientmsgid`` (WeChat answers 45065 and sends nothing twice); tag changes are repeated.
   Everything still ``planned`` is sent by the next run of the same key: nobody is missed.
5. **Pause.** A dispatcher looks at the campaign's switch (:mod:`campaigns.state`) before each claim
   (at most every ``PAUSE_CHECK_SECONDS``): once paused it claims nothing more, records the chunks in
   flight and returns; the rest stays ``planned`` for the run of the same key after the resume.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaigns.campaign import Campaign
from campaigns.sending import Outcome, Retry, client_msg_id, send_batch, send_one
from campaigns.state import is_paused
from connectors.base import Connector
from scrm.config import CampaignSettings
from scrm.models import CampaignRun, Delivery, Follow, utcnow
from scrm.store import Store

__all__ = ["Dispatcher", "RunCounts", "owner_id", "run_counts", "run_key"]

run_t = CampaignRun.__table__  # type: ignore[attr-defined]
delivery_t = Delivery.__table__  # type: ignore[attr-defined]
follow_t = Follow.__table__  # type: ignore[attr-defined]
MASS_BATCH = 10_000  # openids per message/mass/send (WeChat's limit)
TAG_CHUNK = 500
PAUSE_CHECK_SECONDS = 0.05  # how often a sending dispatcher looks whether its campaign was paused

_OWNER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_id() -> str:
    """This process's owner id: ``host:pid:nonce``."""
    return _OWNER


def run_key(campaign: str, scheduled_for: datetime) -> str:
    """The run key of a campaign scheduled at a time (UTC, to the second).

    >>> run_key("invite_leaders", datetime(2026, 5, 1, 10, 0, tzinfo=UTC))
    'invite_leaders@2026-05-01T10:00:00Z'
    """
    return f"{campaign}@{scheduled_for.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


@dataclass
class RunCounts:
    """Deliveries of a run by status, by skip reason and by channel."""

    status: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)
    variants: dict[str, int] = field(default_factory=dict)  # customers assigned to each variant, control

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reasons": self.reasons,
            "channels": self.channels,
            "variants": self.variants,
        }


def run_counts(conn: Connection, run_id: int) -> RunCounts:
    d = delivery_t.c
    counts = RunCounts()
    for status, reason, channel, variant, n in conn.execute(
        sa.select(d.status, d.reason, d.channel, d.variant, sa.func.count())
        .where(d.run_id == run_id)
        .group_by(d.status, d.reason, d.channel, d.variant)
    ):
        counts.status[status] = counts.status.get(status, 0) + n
        if variant:
            counts.variants[variant] = counts.variants.get(variant, 0) + n
        if reason:
            counts.reasons[reason] = counts.reasons.get(reason, 0) + n
        if status in ("sent", "unknown", "sending") and channel:
            counts.channels[channel] = counts.channels.get(channel, 0) + n
    return counts


def _alive(owner: str, lease_expired: bool) -> bool:
    host, _, rest = owner.partition(":")
    if owner == _OWNER:
        return True
    if host != socket.gethostname():
        return not lease_expired
    try:
        process = psutil.Process(int(rest.split(":", 1)[0]))
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, ValueError):
        return False


class Dispatcher:
    """Sends the due deliveries of one run through ``connector``.

    Parameters
    ----------
    store, settings
        The store and the ``[campaigns]`` settings (concurrency, retries, lease).
    campaign
        The campaign (its template id, url and tag for the sends).
    connector
        An open connector of the campaign's account.
    clock
        Returns "now" (tests move it); ``sleep`` waits between retries.
    stop
        Once set, the dispatcher claims nothing more and returns after the chunks in flight (the
        web server shutting down); what is left stays planned for the next run of the key.
    """

    def __init__(
        self,
        store: Store,
        settings: CampaignSettings,
        campaign: Campaign,
        connector: Connector,
        *,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        tag_id: int = 0,
        stop: threading.Event | None = None,
    ) -> None:
        self.store, self.settings, self.campaign, self.connector = store, settings, campaign, connector
        self.stop = stop  # set: claim nothing more (the server is shutting down), like a pause
        self.clock = clock
        self.retry = Retry(settings.send_retries, settings.backoff_seconds, sleep)
        self.tag_id = tag_id
        self.chunk = 2 * settings.concurrency
        self.paused = False  # set when the campaign was found paused: sending stopped
        self._checked = -PAUSE_CHECK_SECONDS

    def _stop(self, conn: Connection) -> bool:
        """Whether to claim nothing more: the ``stop`` event is set, or the campaign has been paused
        (looked up at most every ``PAUSE_CHECK_SECONDS``)."""
        if self.stop is not None and self.stop.is_set():
            return True
        if not self.paused and time.monotonic() - self._checked >= PAUSE_CHECK_SECONDS:
            self._checked = time.monotonic()
            self.paused = is_paused(conn, self.campaign.name)
        return self.paused

    # -- in doubt -------------------------------------------------------------------------------------

    def resolve_in_doubt(self, run_id: int) -> int:
        """Settle deliveries left ``sending`` by dead dispatchers; return how many became ``unknown``."""
        d = delivery_t.c
        now = self.clock()
        lease = timedelta(seconds=self.settings.lease_seconds)
        unknown = 0
        with self.store.connect() as conn:
            owners = conn.execute(
                sa.select(d.owner, sa.func.min(d.claimed_at))
                .where(d.run_id == run_id, d.status == "sending")
                .group_by(d.owner)
            ).all()
            for owner, claimed in owners:
                if _alive(owner, claimed is not None and now - claimed > lease):
                    continue
                mine = sa.and_(d.run_id == run_id, d.status == "sending", d.owner == owner)
                unknown += conn.execute(
                    sa.update(delivery_t)
                    .where(mine, d.channel.in_(("text", "template")))
                    .values(
                        status="unknown", reason="in_doubt", error="the dispatcher stopped during the send"
                    )
                ).rowcount
                conn.execute(sa.update(delivery_t).where(mine).values(status="planned", owner=""))
        return unknown

    # -- claim and record -----------------------------------------------------------------------------

    def _claim(
        self, conn: Connection, run_id: int, channels: Sequence[str], limit: int, batch: int | None
    ) -> list[Any]:
        d = delivery_t.c
        now = self.clock()
        due = sa.and_(d.run_id == run_id, d.status == "planned", d.due_at <= now, d.channel.in_(channels))
        if batch is not None:
            due = sa.and_(due, d.batch == batch)
        pick = sa.select(d.id).where(due).order_by(d.id).limit(limit)
        if self.store.dialect == "postgresql":
            # A CTE runs once. As "id IN (subquery)" PostgreSQL may rescan the LIMIT subquery for each
            # row, and with SKIP LOCKED every rescan finds the next rows: the claim would take them all.
            picked = pick.with_for_update(skip_locked=True).cte("picked")
            chosen: Any = d.id == picked.c.id
        else:
            chosen = d.id.in_(pick)
        stmt = (
            sa.update(delivery_t)
            .where(chosen, d.status == "planned")
            .values(status="sending", owner=_OWNER, claimed_at=now, sent_at=now, attempts=d.attempts + 1)
            .returning(d.id, d.customer_id, d.openid, d.channel, d.payload, d.batch, d.attempts)
        )
        return sorted(conn.execute(stmt).all())

    def _record(self, conn: Connection, outcomes: Sequence[Outcome], account_id: int) -> None:
        if not outcomes:
            return
        d = delivery_t.c
        now = self.clock()
        rows = []
        for o in outcomes:
            status = o.status
            if status == "unknown" and o.channel == "mass":
                status = "planned"  # repeated with the same clientmsgid: sent at most once
            rows.append(
                {
                    "did": o.delivery_id,
                    "st": status,
                    "ch": o.channel,
                    "mid": o.msg_id,
                    "code": o.errcode,
                    "err": o.error[:2000],
                    "why": o.reason,
                    "at": now,
                }
            )
        conn.execute(
            sa.update(delivery_t)
            .where(d.id == sa.bindparam("did"))
            .values(
                status=sa.bindparam("st"),
                channel=sa.bindparam("ch"),
                msg_id=sa.bindparam("mid"),
                errcode=sa.bindparam("code"),
                error=sa.bindparam("err"),
                reason=sa.bindparam("why"),
                sent_at=sa.bindparam("at"),
            ),
            rows,
        )
        gone = [o.delivery_id for o in outcomes if o.errcode == 43004]
        if gone and account_id:
            customers = sa.select(d.customer_id).where(d.id.in_(gone))
            f = follow_t.c
            conn.execute(
                sa.update(follow_t)
                .where(f.account_id == account_id, f.customer_id.in_(customers), f.unsubscribed_at.is_(None))
                .values(unsubscribed_at=now)
            )

    # -- the loops ------------------------------------------------------------------------------------

    def _payload(self, raw: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(raw) if raw else {}
        return value

    def _send_row(self, row: Any) -> Outcome:
        return send_one(
            self.connector,
            row.id,
            row.openid,
            row.channel,
            self._payload(row.payload),
            template_id=self.campaign.template_id,
            url=self.campaign.url,
            retry=self.retry,
        )

    def send_messages(self, run_id: int, account_id: int = 0) -> int:
        """Send the due customer-service and template messages, two chunks in flight; return how many."""
        sent = 0
        inflight: deque[list[Future[Outcome]]] = deque()
        more = True
        with ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="scrm-send") as pool:
            while more or inflight:
                results: list[Outcome] = []
                if inflight and (len(inflight) >= 2 or not more):
                    results = [f.result() for f in inflight.popleft()]
                with self.store.connect() as conn:
                    self._record(conn, results, account_id)
                    more = more and not self._stop(conn)
                    rows = self._claim(conn, run_id, ("text", "template"), self.chunk, None) if more else []
                sent += sum(o.status == "sent" for o in results)
                if more and not rows:
                    more = False
                if rows:
                    inflight.append([pool.submit(self._send_row, row) for row in rows])
        return sent

    def send_batches(self, run: tuple[int, str], account_id: int = 0) -> int:
        """Send the due mass sends (a batch per request) and tag changes; return deliveries sent."""
        run_id, key = run
        d = delivery_t.c
        sent = 0
        while True:
            with self.store.connect() as conn:
                if self._stop(conn):
                    return sent
                nxt = conn.execute(
                    sa.select(d.channel, sa.func.min(d.batch))
                    .where(
                        d.run_id == run_id,
                        d.status == "planned",
                        d.due_at <= self.clock(),
                        d.channel.in_(("mass", "tag", "untag")),
                    )
                    .group_by(d.channel)
                ).first()
                if nxt is None:
                    return sent
                channel, batch = nxt
                to_tag = channel == "mass" and bool(self.campaign.tag)
                limit = (2**31 - 1 if to_tag else MASS_BATCH) if channel == "mass" else TAG_CHUNK
                rows = self._claim(conn, run_id, (channel,), limit, batch if channel == "mass" else None)
            if not rows:
                continue
            text = str(self._payload(rows[0].payload).get("text", "")) if channel == "mass" else ""
            outcomes = send_batch(
                self.connector,
                [r.id for r in rows],
                [r.openid for r in rows],
                channel,
                text=text,
                client_msg_id=client_msg_id(key, int(batch)),
                tag_id=self.tag_id,
                to_tag=to_tag,
                retry=self.retry,
            )
            if (
                channel == "mass"
                and outcomes[0].status == "unknown"
                and rows[0].attempts > self.retry.retries
            ):
                outcomes = [
                    Outcome(o.delivery_id, "failed", o.channel, "", None, o.error, "network")
                    for o in outcomes
                ]
            with self.store.connect() as conn:
                self._record(conn, outcomes, account_id)
            sent += sum(o.status == "sent" for o in outcomes)
