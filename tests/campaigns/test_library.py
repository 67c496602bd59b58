"""The campaign library: saved segments and campaigns beside the folder's, pause and resume, the
scheduler picking up saved campaigns, and a run paused mid-way resumed without sending twice."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
import time_machine
from click.testing import CliRunner

from campaigns import dispatch, library
from campaigns.campaign import load_campaign
from campaigns.launch import active_runs, join_runs
from campaigns.runner import RunResult
from campaigns.saved import get_campaign, load_definitions
from campaigns.scheduler import (
    _trigger_job,
    connector_factory,
    fire_triggers,
    run_scheduled,
    start_scheduler,
    sync_jobs,
)
from scrm.cli import cli
from scrm.errors import CampaignError, Conflict, NotFound, TemplateError
from scrm.models import CampaignRun, Delivery
from scrm.models_web import AuditEntry
from tests.campaigns.conftest import World

run_t = CampaignRun.__table__  # type: ignore[attr-defined]
delivery_t = Delivery.__table__  # type: ignore[attr-defined]
audit_t = AuditEntry.__table__  # type: ignore[attr-defined]
ACTOR = "token:test"
LEADERS = {"description": "community leaders", "where": {"role": "leader"}}
WEEKLY_FILE = """
[campaign]
action = "template"
template_id = "TPL_EVENT"
[campaign.fields]
first = "Weekly news"
[campaign.schedule]
cron = "0 10 * * mon"
[audience]
role = "leader"
"""


def invite(**extra: object) -> dict[str, object]:
    """A saved campaign's definition: a text message to the saved segment ``leaders``."""
    return {
        "campaign": {
            "name": "invite",
            "action": "template",
            "template_id": "TPL_EVENT",
            "segment": "leaders",
            "text": "Hi {{ name }}, you lead community {{ community }}",
            "control_percent": 20,
            "seed": 3,
            **extra,
        }
    }


def audit_actions(w: World) -> list[tuple[str, str]]:
    with w.store.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(sa.select(audit_t.c.action, audit_t.c.target).order_by(audit_t.c.id))
        ]


def test_saved_segments_and_campaigns_live_beside_the_folder(world: World) -> None:
    w = world
    w.campaign("weekly", WEEKLY_FILE)
    seg = library.save_segment(w.store, w.settings, "leaders", LEADERS, ACTOR)
    assert seg.name == "leaders"
    count = library.segment_preview(w.store, w.settings, "leaders", sample=3)
    assert count["count"] > 0 and len(count["sample"]) == 3
    campaign = library.save_campaign(w.store, w.settings, invite(), ACTOR)
    assert campaign.name == "invite" and campaign.audience.name == "leaders"
    listed = {c.name: c for c in library.list_campaigns(w.store, w.settings)}
    assert (listed["weekly"].source, listed["invite"].source) == ("file", "saved")
    assert listed["weekly"].when == "cron 0 10 * * mon" and listed["invite"].variants == ["main"]
    assert library.get_campaign(w.store, w.settings, "invite").control_percent == 20
    assert library.campaign_info(w.store, w.settings, "weekly").definition["campaign"]["action"] == "template"
    # the audience count and the rendered preview of a definition being built (not saved)
    assert library.audience_count(w.store, w.settings, invite()) == count["count"]
    shown = library.render_preview(w.store, w.settings, invite())
    first = count["sample"][0]
    assert shown["customer_id"] == first["customer_id"]
    assert (
        shown["messages"][0]["fields"]["first"]
        == f"Hi {first['name']}, you lead community {first['community']}"
    )
    # the dry run: counts per outcome and variant, samples rendered, nothing stored
    result = library.dry_run(w.store, w.settings, "invite", sample=2)
    assert set(result["variants"]) == {"main", "control"}
    assert sum(result["variants"].values()) == sum(
        result["status"].get(k, 0) for k in ("would_send", "control")
    )
    assert len(result["samples"]) == 2 and result["samples"][0]["fields"]["first"].startswith("Hi ")
    with w.store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(run_t)).scalar_one() == 0
    assert audit_actions(w) == [("segment.create", "leaders"), ("campaign.create", "invite")]


def test_one_name_space_and_the_parsers_messages(world: World) -> None:
    w = world
    w.campaign("weekly", WEEKLY_FILE)
    library.save_segment(w.store, w.settings, "leaders", LEADERS, ACTOR)
    with pytest.raises(Conflict, match="defined by the file"):
        library.save_campaign(w.store, w.settings, invite(name="weekly"), ACTOR)
    library.save_campaign(w.store, w.settings, invite(), ACTOR)
    with pytest.raises(Conflict, match="exists already"):
        library.save_campaign(w.store, w.settings, invite(), ACTOR, create_only=True)
    with pytest.raises(Conflict, match="audience of campaign"):
        library.delete_segment(w.store, w.settings, "leaders", ACTOR)
    # an invalid definition gets the file parser's message
    bad = {"campaign": {"name": "bad", "action": "fax"}, "audience": {"role": "leader"}}
    with pytest.raises(CampaignError) as saved_error:
        library.save_campaign(w.store, w.settings, bad, ACTOR)
    (w.folder / "bad.toml").write_text('[campaign]\naction = "fax"\n[audience]\nrole = "leader"\n')
    with pytest.raises(CampaignError) as file_error:
        load_campaign(w.folder / "bad.toml")
    (w.folder / "bad.toml").unlink()
    message = "unknown action 'fax' (known: text, template, mass, tag, untag)"
    assert str(saved_error.value).endswith(message) and str(file_error.value).endswith(message)
    for definition, expected in [
        (invite(name="no spaces"), "campaign name 'no spaces'"),
        (invite(segment="nobody"), "nobody"),
        (invite(schedule={"cron": "61 * * * *"}), "schedule cron"),
        ({"campaign": "x"}, "a JSON object with a `campaign` table"),
    ]:
        with pytest.raises(CampaignError, match=expected):
            library.save_campaign(w.store, w.settings, definition, ACTOR)
    with pytest.raises(CampaignError, match="unknown field 'rol'"):
        library.save_segment(w.store, w.settings, "x", {"where": {"rol": "leader"}}, ACTOR)
    with pytest.raises(TemplateError, match="undefined"):
        library.render_preview(w.store, w.settings, invite(text="Hi {{ nmae }}"))
    # nothing was stored by the refusals
    assert [c.name for c in library.list_campaigns(w.store, w.settings)] == ["invite", "weekly"]
    assert [s.name for s in library.list_segments(w.store, w.settings)] == ["leaders"]
    library.delete_campaign(w.store, w.settings, "invite", ACTOR)
    library.delete_segment(w.store, w.settings, "leaders", ACTOR)
    with pytest.raises(NotFound):
        get_campaign(w.store, w.settings, "invite")
    with pytest.raises(Conflict, match="edit the file"):
        library.delete_campaign(w.store, w.settings, "weekly", ACTOR)


def test_a_paused_campaign_runs_nothing_scheduled_or_triggered(world: World) -> None:
    w = world
    library.save_segment(w.store, w.settings, "leaders", LEADERS, ACTOR)
    library.save_campaign(w.store, w.settings, invite(schedule={"interval_minutes": 60}), ACTOR)
    assert library.set_paused(w.store, w.settings, "invite", True, ACTOR)
    assert not library.set_paused(w.store, w.settings, "invite", True, ACTOR)
    assert library.is_paused(w.store, "invite")
    with pytest.raises(Conflict, match="paused"):
        w.run(get_campaign(w.store, w.settings, "invite"))
    with time_machine.travel(datetime(2026, 10, 27, 2, 0, 5, tzinfo=UTC), tick=False):
        run_scheduled(str(w.config), "invite")
    library.save_campaign(
        w.store, w.settings, invite(name="welcome", trigger={"event": "subscribe", "channel": "*"}), ACTOR
    )
    library.set_paused(w.store, w.settings, "welcome", True, ACTOR)
    campaigns = load_definitions(w.store, w.settings).campaigns
    assert fire_triggers(w.store, w.settings, campaigns, connector_factory(w.settings), now=w.now) == {}
    assert w.sim.sent == []
    library.set_paused(w.store, w.settings, "invite", False, ACTOR)
    with time_machine.travel(datetime(2026, 10, 27, 2, 0, 5, tzinfo=UTC), tick=False):
        run_scheduled(str(w.config), "invite")
    with w.store.connect() as conn:
        assert list(conn.execute(sa.select(run_t.c.run_key)).scalars()) == ["invite@2026-10-27T02:00:00Z"]
    assert w.sim.sent
    assert ("campaign.pause", "invite") in audit_actions(w) and (
        "campaign.resume",
        "invite",
    ) in audit_actions(w)
    with pytest.raises(NotFound):
        library.set_paused(w.store, w.settings, "nope", True, ACTOR)


def test_the_scheduler_picks_up_saved_campaigns_and_their_changes(world: World) -> None:
    w = world
    w.campaign("weekly", WEEKLY_FILE)
    library.save_segment(w.store, w.settings, "leaders", LEADERS, ACTOR)
    library.save_campaign(w.store, w.settings, invite(schedule={"interval_minutes": 60}), ACTOR)
    scheduler = start_scheduler(w.store, w.settings)
    try:
        assert {j.id for j in scheduler.get_jobs()} == {
            "campaign:weekly",
            "campaign:invite",
            "campaign-triggers",
        }
        weekly_next = scheduler.get_job("campaign:weekly").next_run_time
        library.set_schedule(w.store, w.settings, "invite", {"cron": "30 9 * * *"}, ACTOR)
        assert get_campaign(w.store, w.settings, "invite").schedule == {"cron": "30 9 * * *"}
        config = str(w.config)
        _trigger_job(config)  # what scrm serve runs every trigger_interval_seconds: it syncs the jobs
        job = scheduler.get_job("campaign:invite")
        assert job.next_run_time.astimezone(w.settings.scrm.tz).strftime("%H:%M") == "09:30"
        assert scheduler.get_job("campaign:weekly").next_run_time == weekly_next  # untouched
        library.set_schedule(w.store, w.settings, "invite", None, ACTOR)
        sync_jobs(scheduler, load_definitions(w.store, w.settings).campaigns, w.settings, config)
        assert scheduler.get_job("campaign:invite") is None
    finally:
        scheduler.shutdown()
    with pytest.raises(Conflict, match="edit the file"):
        library.set_schedule(w.store, w.settings, "weekly", {"interval_minutes": 5}, ACTOR)


def test_a_run_paused_mid_way_stops_and_resumes_sending_each_message_once(
    make_world: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    w: World = make_world(concurrency=1, quiet_hours_start="00:00", quiet_hours_end="00:00")  # type: ignore[operator]
    monkeypatch.setattr(dispatch, "PAUSE_CHECK_SECONDS", 0.0)  # look at the switch before every chunk
    message = {"action": "template", "template_id": "TPL_EVENT", "text": "Hello {{ openid[-4:] }}"}
    everyone = {"campaign": {"name": "everyone", **message}, "audience": {"subscribed": True}}
    library.save_campaign(w.store, w.settings, everyone, ACTOR)
    campaign = get_campaign(w.store, w.settings, "everyone")
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.append(w.run(campaign, key="everyone@k")))
    thread.start()
    deadline = time.monotonic() + 60
    while len(w.sim.sent) < 20 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.001)
    library.set_paused(w.store, w.settings, "everyone", True, ACTOR)
    thread.join(60)
    first = results[0]
    assert first.paused and first.pending > 0, first.as_dict()
    sent_while_running = len(w.sim.sent)
    time.sleep(0.3)
    assert len(w.sim.sent) == sent_while_running  # nothing goes out while paused
    with w.store.connect() as conn:
        assert conn.execute(sa.select(run_t.c.status)).scalar_one() == "sending"
    with pytest.raises(Conflict):
        w.run(campaign, key="everyone@k")
    library.set_paused(w.store, w.settings, "everyone", False, ACTOR)
    second = w.run(campaign, key="everyone@k")
    assert not second.created and not second.paused and second.pending == 0
    received = Counter(w.sent_to("template"))
    assert max(received.values()) == 1  # nobody twice
    with w.store.connect() as conn:
        final = Counter(conn.execute(sa.select(delivery_t.c.status)).scalars())
        summary = json.loads(conn.execute(sa.select(run_t.c.summary)).scalar_one())
    assert final["sent"] == len(received) and "planned" not in final and "sending" not in final
    assert first.sent_now + second.sent_now == len(received)
    assert summary["status"]["sent"] == len(received)


def test_the_cli_lists_runs_pauses_and_resumes_saved_campaigns(world: World, runner: CliRunner) -> None:
    w = world
    library.save_segment(w.store, w.settings, "leaders", LEADERS, ACTOR)
    library.save_campaign(w.store, w.settings, invite(), ACTOR)
    base = ["--config", str(w.config), "campaign"]
    listing = runner.invoke(cli, [*base, "list", "--json"])
    assert listing.exit_code == 0, listing.output
    assert [(c["name"], c["source"], c["paused"]) for c in json.loads(listing.output)] == [
        ("invite", "saved", False)
    ]
    paused = runner.invoke(cli, [*base, "pause", "invite"])
    assert paused.exit_code == 0 and "Campaign invite paused." in paused.output
    assert "already paused" in runner.invoke(cli, [*base, "pause", "invite"]).output
    assert "paused" in runner.invoke(cli, [*base, "list"]).output
    dry = runner.invoke(cli, [*base, "run", "invite", "--dry-run", "--json"])
    assert dry.exit_code == 0 and json.loads(dry.output)["status"]["would_send"] > 0
    refused = runner.invoke(cli, [*base, "run", "invite", "--at", "2026-10-27 10:00"])
    assert refused.exit_code == 1 and "campaign invite is paused" in refused.output
    assert runner.invoke(cli, [*base, "resume", "invite"]).exit_code == 0
    ran = runner.invoke(cli, [*base, "run", "invite", "--at", "2026-10-27 10:00", "--json"])
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output)["status"]["sent"] == len(w.sim.sent) > 0
    report = runner.invoke(cli, [*base, "report", "invite", "--json"])
    assert {g["group"] for g in json.loads(report.output)["groups"]} == {"main", "control"}
    segments = runner.invoke(cli, ["--config", str(w.config), "segment", "list", "--json"])
    assert segments.exit_code == 0, segments.output
    assert [(s["name"], s["source"], s["created_by"]) for s in json.loads(segments.output)] == [
        ("leaders", "saved", ACTOR)
    ]
    missing = runner.invoke(cli, [*base, "pause", "nope"])
    assert missing.exit_code == 1 and "no campaign 'nope'" in missing.output


def test_a_background_run_stopped_at_shutdown_is_finished_by_the_same_key(
    make_world: Callable[..., World],
) -> None:
    w = make_world(concurrency=1, quiet_hours_start="00:00", quiet_hours_end="00:00")
    message = {"action": "template", "template_id": "TPL_EVENT", "text": "Hello {{ openid[-4:] }}"}
    library.save_campaign(
        w.store, w.settings, {"campaign": {"name": "all", **message}, "audience": {"subscribed": True}}, ACTOR
    )
    started = library.start_run(w.store, w.settings, "all", "k1", ACTOR)
    assert started["created"] and started["sending"] and active_runs() == ["all@api:k1"]
    assert join_runs(30, stop=True)  # what the web app does when it shuts down
    assert active_runs() == []
    with w.store.connect() as conn:
        left = Counter(conn.execute(sa.select(delivery_t.c.status)).scalars())
    assert left["planned"] > 0 and left["sending"] == left["unknown"] == 0  # nothing cut off mid-send
    again = library.start_run(w.store, w.settings, "all", "k1", ACTOR)
    assert not again["created"] and again["sending"]
    assert join_runs(60)
    received = Counter(w.sent_to("template"))
    with w.store.connect() as conn:
        final = Counter(conn.execute(sa.select(delivery_t.c.status)).scalars())
        status = conn.execute(sa.select(run_t.c.status)).scalar_one()
    assert status == "done" and final["sent"] == len(received) == left["planned"] + left["sent"]
    assert max(received.values()) == 1
    done = library.start_run(w.store, w.settings, "all", "k1", ACTOR)
    assert done == {**done, "status": "done", "sending": False, "created": False}
