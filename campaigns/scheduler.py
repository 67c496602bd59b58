"""Scheduled and triggered campaigns: APScheduler 3 with its jobs persisted in the store.

:func:`start_scheduler` (run by ``scrm serve``) starts a background scheduler whose job store is a
``SQLAlchemyJobStore`` on the store's engine (table ``apscheduler_jobs``), so jobs survive a restart.
Each campaign with a ``[campaign.schedule]`` gets one job (``cron`` in crontab syntax, ``interval_minutes``
or a one-off ``at``), in ``[scrm] timezone``.

**Misfires.** A run missed while no scheduler was up fires once when one comes back within
``[campaigns] misfire_grace_seconds`` (``coalesce``: however many were missed), later than that it is
skipped and logged. The run key is the campaign's name and the latest scheduled time at or before the
moment the job runs, computed from the trigger, so two scheduler processes (two ``scrm serve``) firing
the same schedule meet on one run key and one of them does the work.

Every ``trigger_interval_seconds`` unfinished runs send what has come due (:func:`resume_due`: messages
held back by the quiet hours or for the customer's usual hour), and **triggers** are looked for by
:func:`fire_triggers`:
``stage_change`` (``to``: a lifecycle stage) and ``churn_warning`` after each finished ``scrm score``
(one run per score run, key ``name@score_run:ID``); ``subscribe`` (``channel``: a shell pattern of the
channel QR code's scene), ``purchase`` and ``keyword`` (``keyword``: in a message) within the last day,
one run per event (``name@follow:ID``, ``@purchase:ID``, ``@message:ID``), each sent once.

Campaigns come from the folder and from the store (saved from the web, :mod:`campaigns.saved`). The
jobs are made at start and brought up to date at every trigger check (a saved campaign created,
rescheduled or deleted from the web is picked up within ``trigger_interval_seconds``). A **paused**
campaign (:mod:`campaigns.state`) keeps its job, but the job, its triggers and the resuming of its
unfinished runs do nothing (logged) until it is resumed.
"""

from __future__ import annotations

import fnmatch
import logging
import weakref
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore  # type: ignore[import-untyped]
from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.base import BaseTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.date import DateTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from campaigns.campaign import Campaign
from campaigns.runner import run_campaign
from campaigns.saved import get_campaign, load_definitions
from campaigns.state import is_paused, paused_campaigns
from connectors.base import Connector
from scrm.config import Settings, load_settings
from scrm.errors import CampaignError, ScrmError
from scrm.models import (
    CampaignRun,
    ChurnWarning,
    Follow,
    Interaction,
    Purchase,
    ScoreRun,
    StageChange,
    utcnow,
)
from scrm.store import Store

__all__ = [
    "build_trigger",
    "connector_factory",
    "describe_timing",
    "fire_triggers",
    "latest_fire",
    "latest_runs",
    "resume_due",
    "run_scheduled",
    "start_scheduler",
    "sync_jobs",
]

log = logging.getLogger(__name__)
run_t = CampaignRun.__table__  # type: ignore[attr-defined]
score_run_t = ScoreRun.__table__  # type: ignore[attr-defined]
stage_t = StageChange.__table__  # type: ignore[attr-defined]
churn_t = ChurnWarning.__table__  # type: ignore[attr-defined]
follow_t = Follow.__table__  # type: ignore[attr-defined]
purchase_t = Purchase.__table__  # type: ignore[attr-defined]
inter_t = Interaction.__table__  # type: ignore[attr-defined]
ConnectorFactory = Callable[[Campaign], Connector]
_running: weakref.WeakSet[BackgroundScheduler] = weakref.WeakSet()  # started here, synced by triggers


def describe_timing(c: Campaign) -> str:
    """How a campaign is started, in words."""
    if c.schedule:
        (kind, value), *_ = c.schedule.items()
        return {"cron": f"cron {value}", "interval_minutes": f"every {value} min", "at": f"at {value}"}[kind]
    if c.trigger:
        extra = {k: v for k, v in c.trigger.items() if k != "event"}
        return f"on {c.trigger['event']}" + "".join(f" {k}={v}" for k, v in extra.items())
    return "manual"


def build_trigger(c: Campaign, tz: ZoneInfo) -> BaseTrigger:
    """The APScheduler trigger of a scheduled campaign (in the configured time zone)."""
    if not c.schedule:
        raise CampaignError(f"{c.source}: campaign {c.name} has no [campaign.schedule]")
    (kind, value), *_ = c.schedule.items()
    try:
        if kind == "cron":
            return CronTrigger.from_crontab(str(value), timezone=tz)
        if kind == "interval_minutes":
            return IntervalTrigger(
                minutes=float(value), timezone=tz, start_date=datetime(2000, 1, 1, tzinfo=tz)
            )
        at = datetime.fromisoformat(str(value))
        return DateTrigger(at if at.tzinfo else at.replace(tzinfo=tz), timezone=tz)
    except (ValueError, TypeError) as exc:
        raise CampaignError(f"{c.source}: schedule {kind} = {value!r}: {exc}") from None


def latest_fire(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The latest time at or before ``now`` at which ``trigger`` fires (None: not yet).

    >>> tz = ZoneInfo("Asia/Shanghai")
    >>> t = CronTrigger.from_crontab("0 10 * * *", timezone=tz)
    >>> latest_fire(t, datetime(2026, 5, 2, 9, 0, tzinfo=tz)).isoformat()
    '2026-05-01T10:00:00+08:00'
    """
    if isinstance(trigger, DateTrigger):
        run_date: datetime = trigger.run_date
        return run_date if run_date <= now else None
    span = timedelta(hours=1)
    while span < timedelta(days=800):
        t: datetime | None = trigger.get_next_fire_time(None, now - span)
        if t is not None and t <= now:
            while True:
                nxt: datetime | None = trigger.get_next_fire_time(t, t + timedelta(microseconds=1))
                if nxt is None or nxt > now:
                    return t
                t = nxt
        span *= 4
    return None


def latest_runs(store: Store) -> dict[str, dict[str, Any]]:
    """The latest run of every campaign: key, status, start."""
    with store.connect() as conn:
        last = (
            sa.select(run_t.c.campaign, sa.func.max(run_t.c.id).label("id"))
            .group_by(run_t.c.campaign)
            .subquery()
        )
        rows = conn.execute(
            sa.select(run_t.c.campaign, run_t.c.run_key, run_t.c.status, run_t.c.started_at).join(
                last, last.c.id == run_t.c.id
            )
        ).all()
    return {r[0]: {"run_key": r[1], "status": r[2], "started_at": r[3]} for r in rows}


def connector_factory(settings: Settings) -> ConnectorFactory:
    """Opens a connector of the campaign's account (as `scrm serve` does)."""
    from campaigns.runner import campaign_account
    from connectors.wechat import WeChatConnector

    def make(c: Campaign) -> Connector:
        name, _ = campaign_account(settings, c)
        return WeChatConnector.from_settings(settings, name)[1]

    return make


def run_scheduled(config_path: str | None, name: str) -> None:
    """The scheduler's job: run campaign ``name`` keyed by its latest scheduled time."""
    settings = load_settings(config_path)
    store = Store(settings.database_url)
    try:
        campaign = get_campaign(store, settings, name)
        with store.connect() as conn:
            if is_paused(conn, name):
                log.info("campaign %s is paused: its scheduled run is skipped", name)
                return
        fired = latest_fire(build_trigger(campaign, settings.scrm.tz), utcnow() + timedelta(seconds=1))
        if fired is None:
            return
        with connector_factory(settings)(campaign) as connector:
            result = run_campaign(store, settings, campaign, connector, scheduled_for=fired)
        log.info("campaign %s: %s", result.run_key, result.counts.status)
    except (ScrmError, KeyError) as exc:
        log.error("scheduled campaign %s failed: %s", name, exc)
    finally:
        store.close()


def _events(store: Store, c: Campaign, now: datetime) -> list[tuple[str, list[int]]]:
    """(run key, customers) of the events of ``c``'s trigger not yet older than a day."""
    trigger = c.trigger or {}
    event = trigger.get("event")
    since = now - timedelta(days=1)
    out: list[tuple[str, list[int]]] = []
    with store.connect() as conn:
        if event in ("stage_change", "churn_warning"):
            run = conn.execute(
                sa.select(sa.func.max(score_run_t.c.id)).where(score_run_t.c.status == "done")
            ).scalar()
            if run is None:
                return []
            if event == "stage_change":
                q = sa.select(stage_t.c.customer_id).where(
                    stage_t.c.run_id == run, stage_t.c.from_stage != ""
                )
                if trigger.get("to"):
                    q = q.where(stage_t.c.to_stage == str(trigger["to"]))
            else:
                q = sa.select(churn_t.c.customer_id).where(churn_t.c.run_id == run)
            ids = sorted(set(conn.execute(q).scalars()))
            if ids:
                out.append((f"{c.name}@score_run:{run}", ids))
        elif event == "subscribe":
            pattern = str(trigger.get("channel", "*"))
            rows = conn.execute(
                sa.select(follow_t.c.id, follow_t.c.customer_id, follow_t.c.channel).where(
                    follow_t.c.subscribed_at >= since
                )
            ).all()
            out = [
                (f"{c.name}@follow:{i}", [cid])
                for i, cid, ch in rows
                if fnmatch.fnmatchcase(ch or "", pattern)
            ]
        elif event == "purchase":
            rows = conn.execute(
                sa.select(purchase_t.c.id, purchase_t.c.customer_id).where(purchase_t.c.occurred_at >= since)
            ).all()
            out = [(f"{c.name}@purchase:{i}", [cid]) for i, cid in rows]
        elif event == "keyword":
            word = str(trigger.get("keyword", "")).lower()
            rows = conn.execute(
                sa.select(inter_t.c.id, inter_t.c.customer_id, inter_t.c.content).where(
                    inter_t.c.kind == "text", inter_t.c.occurred_at >= since
                )
            ).all()
            out = [
                (f"{c.name}@message:{i}", [cid])
                for i, cid, text in rows
                if word and word in (text or "").lower()
            ]
        if out:
            done = set(
                conn.execute(
                    sa.select(run_t.c.run_key).where(run_t.c.run_key.in_([k for k, _ in out]))
                ).scalars()
            )
            out = [(k, ids) for k, ids in out if k not in done]
    return out


def fire_triggers(
    store: Store,
    settings: Settings,
    campaigns: dict[str, Campaign],
    connectors: ConnectorFactory,
    *,
    now: datetime | None = None,
) -> dict[str, int]:
    """Run every triggered campaign for its new events; return runs started per campaign."""
    now = now or utcnow()
    started: dict[str, int] = {}
    with store.connect() as conn:
        paused = paused_campaigns(conn)
    for c in campaigns.values():
        if not c.trigger:
            continue
        if c.name in paused:
            log.info("campaign %s is paused: its trigger is not checked", c.name)
            continue
        events = _events(store, c, now)
        if not events:
            continue
        with connectors(c) as connector:
            for key, ids in events:
                result = run_campaign(store, settings, c, connector, key=key, only=ids, clock=lambda: now)
                started[c.name] = started.get(c.name, 0) + int(result.created)
    return started


def resume_due(
    store: Store,
    settings: Settings,
    campaigns: dict[str, Campaign],
    connectors: ConnectorFactory,
    *,
    clock: Callable[[], datetime] = utcnow,
) -> dict[str, int]:
    """Send what has come due in unfinished runs (after quiet hours, at usual hours); sent per run key."""
    with store.connect() as conn:
        rows = conn.execute(
            sa.select(run_t.c.run_key, run_t.c.campaign, run_t.c.scheduled_for).where(
                run_t.c.status == "sending"
            )
        ).all()
        paused = paused_campaigns(conn)
    sent: dict[str, int] = {}
    for key, name, when in rows:
        campaign = campaigns.get(name)
        if campaign is None:
            continue
        if name in paused:
            log.info("campaign %s is paused: run %s waits", name, key)
            continue
        with connectors(campaign) as connector:
            result = run_campaign(
                store, settings, campaign, connector, key=key, scheduled_for=when, clock=clock
            )
        sent[key] = result.sent_now
    return sent


def _trigger_job(config_path: str | None) -> None:
    settings = load_settings(config_path)
    store = Store(settings.database_url)
    try:
        campaigns = load_definitions(store, settings).campaigns
        for scheduler in list(_running):
            if scheduler.running:
                sync_jobs(scheduler, campaigns, settings, config_path)
        resume_due(store, settings, campaigns, connector_factory(settings))
        fire_triggers(store, settings, campaigns, connector_factory(settings))
    except ScrmError as exc:
        log.error("campaign triggers failed: %s", exc)
    finally:
        store.close()


def sync_jobs(
    scheduler: BackgroundScheduler, campaigns: dict[str, Campaign], settings: Settings, config: str | None
) -> set[str]:
    """Make the scheduler's campaign jobs those of ``campaigns``: add new schedules, replace changed
    ones, remove the rest (unchanged jobs keep their next run time). Return the job ids."""
    wanted: dict[str, BaseTrigger] = {
        f"campaign:{name}": build_trigger(c, settings.scrm.tz) for name, c in campaigns.items() if c.schedule
    }
    for job in scheduler.get_jobs():
        if job.id.startswith("campaign:") and job.id not in wanted:
            job.remove()
    for job_id, trigger in wanted.items():
        job = scheduler.get_job(job_id)
        same = job is not None and str(job.trigger) == str(trigger)
        if not same or getattr(job.trigger, "timezone", None) != getattr(trigger, "timezone", None):
            scheduler.add_job(
                run_scheduled,
                trigger,
                args=[config, job_id.removeprefix("campaign:")],
                id=job_id,
                replace_existing=True,
            )
    return set(wanted)


def start_scheduler(store: Store, settings: Settings) -> BackgroundScheduler:
    """Start the campaign scheduler in the background (the folder's and the saved campaigns)."""
    campaigns = load_definitions(store, settings).campaigns
    c = settings.campaigns
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=store.engine, tablename="apscheduler_jobs")},
        job_defaults={"coalesce": True, "misfire_grace_time": c.misfire_grace_seconds, "max_instances": 1},
        timezone=settings.scrm.tz,
    )
    config = str(settings.source) if settings.source else None
    scheduler.start(paused=True)
    sync_jobs(scheduler, campaigns, settings, config)
    scheduler.add_job(
        _trigger_job,
        "interval",
        seconds=c.trigger_interval_seconds,
        args=[config],
        id="campaign-triggers",
        replace_existing=True,
    )
    _running.add(scheduler)
    scheduler.resume()
    return scheduler
