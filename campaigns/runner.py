"""Running a campaign: plan (once per run key), render, store the deliveries, dispatch; or a dry run.

:func:`run_campaign` is what ``scrm campaign run``, the scheduler and the triggers call. Rendering
happens while planning: a template that fails for one customer skips that customer (reason
``template_error``, the error kept); one that fails for every customer stops the run before anything
is stored or sent (:class:`~scrm.errors.TemplateError`).

A paused campaign (:mod:`campaigns.state`) is not run (:class:`~scrm.errors.Conflict`; a dry run still
is), and a run paused while it sends stops at its next chunk (``RunResult.paused``): the run of the
same key after the resume sends the rest, each delivery once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from campaigns.campaign import Campaign
from campaigns.dispatch import MASS_BATCH, Dispatcher, RunCounts, run_counts, run_key
from campaigns.messages import Messages
from campaigns.planner import Decision, Recipient, Rules, decide, gather, templates_sent_today
from campaigns.segments import latest_run
from campaigns.state import is_paused
from connectors.base import Connector
from scrm.config import Settings
from scrm.errors import CampaignError, ConfigError, Conflict, TemplateError
from scrm.models import Account, CampaignRun, Customer, Delivery, Tag, utcnow
from scrm.store import Store

__all__ = [
    "RunResult",
    "campaign_account",
    "default_folder",
    "open_run",
    "plan",
    "run_campaign",
    "unfinished_run",
]

run_t = CampaignRun.__table__  # type: ignore[attr-defined]
delivery_t = Delivery.__table__  # type: ignore[attr-defined]
account_t = Account.__table__  # type: ignore[attr-defined]
tag_t = Tag.__table__  # type: ignore[attr-defined]
customer_t = Customer.__table__  # type: ignore[attr-defined]


@dataclass
class RunResult:
    """What a run (or a dry run) did."""

    campaign: str
    run_key: str
    run_id: int | None
    created: bool
    dry_run: bool
    counts: RunCounts
    in_doubt: int = 0
    sent_now: int = 0
    pending: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    plan_seconds: float = 0.0
    paused: bool = False  # the campaign was paused while this run sent: the rest waits, planned

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "run_key": self.run_key,
            "run_id": self.run_id,
            "created": self.created,
            "dry_run": self.dry_run,
            **self.counts.as_dict(),
            "in_doubt": self.in_doubt,
            "sent_now": self.sent_now,
            "pending": self.pending,
            "samples": self.samples,
            "seconds": round(self.seconds, 3),
            "plan_seconds": round(self.plan_seconds, 3),
            "paused": self.paused,
        }


def campaign_account(settings: Settings, campaign: Campaign) -> tuple[str, str]:
    """(config name, appid) of the campaign's account (the only WeChat account when not named)."""
    wechat = {n: a for n, a in settings.accounts.items() if a.platform == "wechat"}
    name = campaign.account
    if name is None:
        if len(wechat) != 1:
            raise ConfigError(
                f"{campaign.source}: name the account (account = NAME): {len(wechat)} configured"
            )
        name = next(iter(wechat))
    if name not in wechat:
        raise ConfigError(f"{campaign.source}: no WeChat account {name!r} in the settings")
    return name, wechat[name].appid


def _planned_rows(
    campaign: Campaign, people: Sequence[Recipient], decisions: Sequence[Decision], now: datetime
) -> tuple[list[dict[str, Any]], list[str]]:
    """Delivery rows with rendered payloads, and the template errors met."""
    messages = Messages(campaign)
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    mass_text: dict[str, str] = {}
    mass_members: Counter[str] = Counter()
    for r, dec in zip(people, decisions, strict=True):
        row = {
            "customer_id": r.customer_id,
            "openid": r.openid,
            "variant": dec.variant,
            "channel": dec.channel,
            "status": dec.status,
            "reason": dec.reason,
            "error": "",
            "payload": "",
            "batch": 0,
            "due_at": dec.due_at or now,
        }
        if dec.status == "planned" and campaign.sends_messages:
            variant = messages.variants[dec.variant]
            try:
                if dec.channel == "mass":  # one text for the whole batch: no per-customer names
                    if dec.variant not in mass_text:
                        mass_text[dec.variant] = messages.render(variant, {"campaign": campaign.name}, "mass")
                    row["payload"] = mass_text[dec.variant]
                    row["batch"] = (sorted(messages.variants).index(dec.variant) << 20) + (
                        0 if campaign.tag else mass_members[dec.variant] // MASS_BATCH
                    )
                    mass_members[dec.variant] += 1
                else:
                    row["payload"] = messages.render(variant, r.context(), dec.channel)
            except TemplateError as exc:
                errors.append(str(exc))
                row.update(status="skipped", reason="template_error", error=str(exc), channel="")
        rows.append(row)
    if not campaign.tag:  # a mass send to a tag (sendall) may reach one follower
        _lone_mass_batches(rows)
    return rows, errors


def _lone_mass_batches(rows: list[dict[str, Any]]) -> None:
    """WeChat's message/mass/send needs two openids at least: a batch of one is skipped, said why."""
    sizes = Counter(r["batch"] for r in rows if r["status"] == "planned" and r["channel"] == "mass")
    for r in rows:
        if r["status"] == "planned" and r["channel"] == "mass" and sizes[r["batch"]] < 2:
            r.update(status="skipped", reason="mass_single_recipient", channel="")


def plan(
    store: Store,
    settings: Settings,
    campaign: Campaign,
    *,
    now: datetime,
    conn: Connection,
    only: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """The delivery rows of a run of ``campaign`` at ``now`` (not stored); ``only``: these customers."""
    _, appid = campaign_account(settings, campaign)
    account_id = conn.execute(sa.select(account_t.c.id).where(account_t.c.external_id == appid)).scalar()
    run = latest_run(store)
    tz = settings.scrm.tz
    audience = campaign.audience.query(run, now)
    if only is not None:
        audience = audience.where(customer_t.c.id.in_(sorted(only)))
    people = gather(
        conn,
        audience,
        account_id=int(account_id or 0),
        appid=appid,
        run_id=run,
        now=now,
        tz=tz,
        usual_hours=campaign.send_time_optimisation,
    )
    left = settings.campaigns.template_quota_per_day - templates_sent_today(conn, now)
    rules = Rules(settings.campaigns, tz, left)
    decisions = [decide(campaign, r, rules, now) for r in people]
    rows, errors = _planned_rows(campaign, people, decisions, now)
    wanted = sum(d.status == "planned" for d in decisions)
    if errors and len(errors) == wanted:
        raise TemplateError(
            f"campaign {campaign.name}: the message failed for all {wanted} customers, "
            f"nothing was sent: {errors[0]}"
        )
    return rows


def _insert(store: Store, table: Any) -> Any:
    return sqlite_insert(table) if store.dialect == "sqlite" else pg_insert(table)


def open_run(
    store: Store,
    settings: Settings,
    campaign: Campaign,
    key: str,
    when: datetime,
    now: datetime,
    only: Sequence[int] | None,
) -> tuple[int, bool]:
    """(run id, created): insert the run and its plan in one transaction, or find the existing run.

    Refused (:class:`~scrm.errors.Conflict`) while the campaign is paused.
    """
    with store.connect() as conn:
        if is_paused(conn, campaign.name):
            raise Conflict(
                f"campaign {campaign.name} is paused: resume it first (scrm campaign resume {campaign.name})"
            )
        stmt = (
            _insert(store, run_t)
            .values(
                run_key=key,
                campaign=campaign.name,
                scheduled_for=when,
                started_at=now,
                status="sending",
                summary="{}",
            )
            .on_conflict_do_nothing(index_elements=["run_key"])
            .returning(run_t.c.id)
        )
        run_id = conn.execute(stmt).scalar()
        if run_id is not None:
            rows = plan(store, settings, campaign, now=now, conn=conn, only=only)
            for r in rows:
                r["run_id"] = run_id
            if rows:
                conn.execute(sa.insert(delivery_t), rows)
            return int(run_id), True
        existing = conn.execute(sa.select(run_t.c.id).where(run_t.c.run_key == key)).scalar_one()
        return int(existing), False


def _tag_id(store: Store, connector: Connector, campaign: Campaign, account_id: int) -> int:
    with store.connect() as conn:
        external = conn.execute(
            sa.select(tag_t.c.external_id).where(
                tag_t.c.account_id == account_id, tag_t.c.name == campaign.tag
            )
        ).scalar()
    if external:
        return int(external)
    for tag in connector.tags():
        if tag.name == campaign.tag:
            return tag.id
    if campaign.action in ("untag", "mass"):
        raise CampaignError(f"{campaign.source}: the account has no tag {campaign.tag!r}")
    return connector.create_tag(campaign.tag).id


def _samples(rows: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in rows:
        if r["status"] == "planned" and r["payload"] and len(out) < n:
            out.append(
                {
                    "customer_id": r["customer_id"],
                    "variant": r["variant"],
                    "channel": r["channel"],
                    **json.loads(r["payload"]),
                }
            )
    return out


def run_campaign(
    store: Store,
    settings: Settings,
    campaign: Campaign,
    connector: Connector | None,
    *,
    scheduled_for: datetime | None = None,
    key: str | None = None,
    dry_run: bool = False,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
    only: Sequence[int] | None = None,
    samples: int = 3,
    stop: threading.Event | None = None,
) -> RunResult:
    """Plan and send one run of ``campaign`` (key: name and ``scheduled_for``, default now).

    Running the same key again (after a crash, or from a second process) sends only what is still
    due: each delivery goes out once. A dry run plans and renders, stores and sends nothing, and
    returns ``samples`` rendered messages. ``stop``: an event that, once set, ends the sending at
    the next chunk (the rest waits, planned, for the next run of the key).
    """
    started = time.perf_counter()
    now = clock()
    when = scheduled_for or now
    key = key or run_key(campaign.name, when)
    if dry_run:
        with store.connect() as conn:
            rows = plan(store, settings, campaign, now=now, conn=conn, only=only)
        counts = RunCounts()
        for r in rows:
            status = "would_send" if r["status"] == "planned" else r["status"]
            counts.status[status] = counts.status.get(status, 0) + 1
            if r["reason"]:
                counts.reasons[r["reason"]] = counts.reasons.get(r["reason"], 0) + 1
            if r["status"] == "planned":
                counts.channels[r["channel"]] = counts.channels.get(r["channel"], 0) + 1
            if r["variant"]:
                counts.variants[r["variant"]] = counts.variants.get(r["variant"], 0) + 1
        return RunResult(
            campaign.name,
            key,
            None,
            False,
            True,
            counts,
            samples=_samples(rows, samples),
            seconds=time.perf_counter() - started,
        )
    if connector is None:
        raise CampaignError("a campaign run needs a connector (only a dry run does without)")
    run_id, created = open_run(store, settings, campaign, key, when, now, only)
    planned = time.perf_counter() - started
    _, appid = campaign_account(settings, campaign)
    with store.connect() as conn:
        account_id = int(
            conn.execute(sa.select(account_t.c.id).where(account_t.c.external_id == appid)).scalar() or 0
        )
    tagged = campaign.action in ("tag", "untag") or (campaign.action == "mass" and bool(campaign.tag))
    tag_id = _tag_id(store, connector, campaign, account_id) if tagged else 0
    dispatcher = Dispatcher(
        store, settings.campaigns, campaign, connector, clock=clock, sleep=sleep, tag_id=tag_id, stop=stop
    )
    in_doubt = dispatcher.resolve_in_doubt(run_id)
    sent = dispatcher.send_messages(run_id, account_id) + dispatcher.send_batches((run_id, key), account_id)
    with store.connect() as conn:
        counts = run_counts(conn, run_id)
        pending = counts.status.get("planned", 0) + counts.status.get("sending", 0)
        values: dict[str, Any] = {"summary": json.dumps(counts.as_dict())}
        if pending == 0:
            values.update(status="done", finished_at=clock())
        conn.execute(sa.update(run_t).where(run_t.c.id == run_id).values(**values))
    return RunResult(
        campaign.name,
        key,
        run_id,
        created,
        False,
        counts,
        in_doubt,
        sent,
        pending,
        seconds=time.perf_counter() - started,
        plan_seconds=planned,
        paused=dispatcher.paused,
    )


def unfinished_run(store: Store, campaign: str) -> tuple[str, datetime] | None:
    """(key, scheduled time) of the campaign's latest run still sending, if any."""
    with store.connect() as conn:
        row = conn.execute(
            sa.select(run_t.c.run_key, run_t.c.scheduled_for)
            .where(run_t.c.campaign == campaign, run_t.c.status == "sending")
            .order_by(run_t.c.id.desc())
            .limit(1)
        ).first()
    return None if row is None else (row[0], row[1])


def default_folder(settings: Settings) -> Path:
    """The campaigns folder of the settings, relative to the config file."""
    folder = Path(settings.campaigns.folder)
    return folder if folder.is_absolute() else settings.base_dir / folder
