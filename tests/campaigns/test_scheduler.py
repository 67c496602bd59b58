"""Scheduled campaigns (APScheduler jobs kept in the store) and event triggers, each run once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import time_machine

from campaigns.campaign import load_campaigns
from campaigns.scheduler import connector_factory, fire_triggers, latest_fire, run_scheduled, start_scheduler
from connectors.sync import import_purchases
from graph.pipeline import rescore
from scrm.models import CampaignRun, Follow, StageChange
from tests.campaigns.conftest import World

run_t = CampaignRun.__table__  # type: ignore[attr-defined]
SCHEDULED = """
[campaign]
action = "template"
template_id = "TPL_EVENT"
[campaign.fields]
first = "Weekly news"
[campaign.schedule]
{schedule}
[audience]
role = "leader"
"""


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: what is tested here is logic, the storage paths run on both in test_dispatch."""
    return f"sqlite:///{tmp_path / 'scrm.db'}"


def runs(w: World) -> list[str]:
    with w.store.connect() as conn:
        return list(conn.execute(sa.select(run_t.c.run_key).order_by(run_t.c.id)).scalars())


def test_latest_fire_of_each_kind_of_schedule() -> None:
    from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

    tz = ZoneInfo("Asia/Shanghai")
    now = datetime(2026, 5, 4, 10, 7, 30, tzinfo=tz)  # a Monday
    from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

    assert latest_fire(CronTrigger.from_crontab("0 10 * * mon", timezone=tz), now) == now.replace(
        minute=0, second=0
    )
    weekly = latest_fire(CronTrigger.from_crontab("0 9 * * fri", timezone=tz), now)
    assert weekly == datetime(2026, 5, 1, 9, 0, tzinfo=tz)
    every = IntervalTrigger(minutes=15, timezone=tz, start_date=datetime(2026, 1, 1, tzinfo=tz))
    assert latest_fire(every, now) == now.replace(minute=0, second=0)


def test_jobs_persist_in_the_store_and_two_firings_make_one_run(world: World) -> None:
    w = world
    w.campaign("weekly", SCHEDULED.format(schedule='cron = "0 10 * * mon"'))
    w.campaign("hourly", SCHEDULED.format(schedule="interval_minutes = 60"))
    scheduler = start_scheduler(w.store, w.settings)
    assert scheduler is not None
    try:
        ids = {job.id for job in scheduler.get_jobs()}
    finally:
        scheduler.shutdown()
    assert ids == {"campaign:weekly", "campaign:hourly", "campaign-triggers"}
    with w.store.connect() as conn:
        stored = set(conn.execute(sa.text("SELECT id FROM apscheduler_jobs")).scalars())
    assert stored == ids  # they survive a restart
    (w.folder / "hourly.toml").unlink()
    again = start_scheduler(w.store, w.settings)
    assert again is not None
    try:
        assert {job.id for job in again.get_jobs()} == {"campaign:weekly", "campaign-triggers"}
        next_run = again.get_job("campaign:weekly").next_run_time
        assert next_run.astimezone(w.settings.scrm.tz).strftime("%a %H:%M") == "Mon 10:00"
    finally:
        again.shutdown()
    # two schedulers firing the same schedule meet on one run key
    with time_machine.travel(datetime(2026, 10, 27, 2, 0, 5, tzinfo=UTC), tick=False):
        run_scheduled(str(w.config), "weekly")
        run_scheduled(str(w.config), "weekly")
    assert runs(w) == ["weekly@2026-10-26T02:00:00Z"]  # Monday 10:00 in Shanghai
    assert len(w.sent_to("template")) > 0
    assert len(w.sent_to("template")) == len(set(w.sent_to("template")))


def test_triggers_fire_once_per_event(world: World) -> None:
    w = world
    w.campaign(
        "winback",
        """
[campaign]
action = "template"
template_id = "TPL_EVENT"
[campaign.fields]
first = "We miss you"
[campaign.trigger]
event = "stage_change"
to = "at_risk"
[audience]
subscribed = true
""",
    )
    w.campaign(
        "welcome",
        """
[campaign]
action = "template"
template_id = "TPL_EVENT"
[campaign.fields]
first = "Welcome from {{ channel }}"
[campaign.trigger]
event = "subscribe"
channel = "kol_*"
[audience]
subscribed = true
""",
    )
    orders = w.sim.population.write_orders_csv(w.folder / "orders.csv", account="brand")
    import_purchases(w.store, w.settings, orders)
    rescore(w.store, w.settings, now=w.now)
    report = rescore(w.store, w.settings, now=w.now + timedelta(days=200))  # silence: some at risk
    s, f = StageChange.__table__, Follow.__table__  # type: ignore[attr-defined]
    with w.store.connect() as conn:
        at_risk = set(
            conn.execute(
                sa.select(s.c.customer_id).where(s.c.run_id == report.run_id, s.c.to_stage == "at_risk")
            ).scalars()
        )
        latest = conn.execute(
            sa.select(sa.func.max(f.c.subscribed_at)).where(f.c.channel.like("kol%"))
        ).scalar()
        now = latest + timedelta(hours=1)
        follows = conn.execute(
            sa.select(f.c.id, f.c.channel).where(f.c.subscribed_at >= now - timedelta(days=1))
        ).all()
    campaigns = load_campaigns(w.folder)
    started = fire_triggers(w.store, w.settings, campaigns, connector_factory(w.settings), now=now)
    kol = [fid for fid, channel in follows if channel.startswith("kol_")]
    assert kol and at_risk
    assert started.get("welcome", 0) == len(kol)
    assert started.get("winback", 0) == (1 if at_risk else 0)
    assert fire_triggers(w.store, w.settings, campaigns, connector_factory(w.settings), now=now) == {}
    keys = runs(w)
    assert sorted(k for k in keys if k.startswith("welcome@")) == sorted(f"welcome@follow:{i}" for i in kol)
    per_campaign = [(m["openid"], m["payload"]["data"]["first"]["value"][:7]) for m in w.sim.sent]
    assert len(per_campaign) == len(set(per_campaign))  # each campaign reached each customer once
