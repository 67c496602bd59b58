"""Quiet hours and send-time optimisation (the clock moved with time_machine)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import time_machine

from campaigns.scheduler import connector_factory, resume_due
from scrm.models import Delivery, Interaction
from tests.campaigns.conftest import World

delivery_t = Delivery.__table__  # type: ignore[attr-defined]
TEMPLATE = """
[campaign]
action = "template"
template_id = "TPL_EVENT"
send_time_optimisation = {sto}
[campaign.fields]
first = "Hello"
[audience]
role = "leader"
subscribed = true
"""


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: what is tested here is logic, the storage paths run on both in test_dispatch."""
    return f"sqlite:///{tmp_path / 'scrm.db'}"


def due_times(w: World) -> dict[int, datetime]:
    with w.store.connect() as conn:
        rows = conn.execute(sa.select(delivery_t.c.customer_id, delivery_t.c.due_at, delivery_t.c.status))
        return {cid: due for cid, due, status in rows if status in ("planned", "sent")}


def test_messages_wait_for_the_end_of_quiet_hours(world: World) -> None:
    w = world
    campaign = w.campaign("q", TEMPLATE.format(sto="false"))
    late = datetime(2026, 10, 27, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
    with time_machine.travel(late, tick=False):
        first = w.run(campaign, key="q@1", clock=lambda: datetime.now(UTC))
    assert first.sent_now == 0 and first.pending == first.counts.status["planned"] > 0
    morning = datetime(2026, 10, 28, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
    assert set(due_times(w).values()) == {morning}
    assert w.sim.sent == []
    campaigns = {"q": campaign}
    with time_machine.travel(morning - timedelta(minutes=5), tick=False):
        assert resume_due(w.store, w.settings, campaigns, connector_factory(w.settings)) == {"q@1": 0}
    with time_machine.travel(morning + timedelta(minutes=5), tick=False):  # what `scrm serve` does
        assert resume_due(w.store, w.settings, campaigns, connector_factory(w.settings)) == {
            "q@1": first.pending
        }
        assert resume_due(w.store, w.settings, campaigns, connector_factory(w.settings)) == {}  # done
    assert len(w.sent_to("template")) == first.pending


def test_send_time_optimisation_picks_each_customers_usual_hour(world: World) -> None:
    w = world
    tz = w.settings.scrm.tz
    i = Interaction.__table__  # type: ignore[attr-defined]
    with w.store.connect() as conn:
        rows = conn.execute(
            sa.select(i.c.customer_id, i.c.occurred_at).where(i.c.occurred_at >= w.now - timedelta(days=90))
        ).all()
    hours: dict[int, Counter[int]] = defaultdict(Counter)
    for cid, at in rows:
        hours[cid][at.astimezone(tz).hour] += 1
    w.run(w.campaign("s", TEMPLATE.format(sto="true")))
    due = due_times(w)
    checked = 0
    for cid, at in due.items():
        local = at.astimezone(tz)
        if cid not in hours:
            assert at == w.now  # never interacted: now (08:00 here is outside the quiet hours)
            continue
        best = max(hours[cid].values())
        usual = min(h for h, n in hours[cid].items() if n == best)
        expected_hour = usual if not (usual >= 22 or usual < 8) else 8  # quiet hours push to 08:00
        assert local.hour == expected_hour, (cid, usual)
        assert w.now <= at < w.now + timedelta(days=1, hours=1)
        checked += 1
    assert checked > 10
