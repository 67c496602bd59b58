"""/campaigns: files and saved campaigns, create / replace / delete, preview, dry run, schedule, pause,
runs (once per idempotency key) and the report, roles and bad bodies, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from campaigns.launch import join_runs
from campaigns.runner import open_run
from campaigns.saved import get_campaign
from scrm.models import utcnow
from tests.web.world import WebWorld


def greeting(name: str, **extra: Any) -> dict[str, Any]:
    """A template message to the leaders (the folder's segment file), its text inline."""
    body = {
        "name": name,
        "action": "template",
        "template_id": "TPL_EVENT",
        "segment": "leaders",
        "text": "Hi {{ name }}, leader of community {{ community }}",
        "control_percent": 20,
        "seed": 5,
        **extra,
    }
    return {"campaign": body}


def mass(name: str) -> dict[str, Any]:
    """A mass message (sent at once, whatever the hour) to the leaders, 25 % held out."""
    body = {"name": name, "action": "mass", "text": "Meetup on Saturday", "control_percent": 25, "seed": 1}
    return {"campaign": body, "audience": {"role": "leader", "subscribed": True}}


def wait_done(client: httpx.Client, name: str, key: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = client.get(f"/campaigns/{name}/runs").json()["items"]
        run = next((r for r in runs if r["run_key"] == f"{name}@api:{key}"), None)
        if run is not None and run["status"] == "done":
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {key} of {name} did not finish")


def test_files_and_saved_campaigns_share_one_list_and_name_space(web_world: WebWorld) -> None:
    w = web_world
    client = w.client("marketer")
    created = client.post("/campaigns", json=greeting("greet"))
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["source"], body["action"], body["variants"], body["paused"]) == (
        "saved",
        "template",
        ["main"],
        False,
    )
    assert body["definition"] == greeting("greet") and body["created_by"] == "token:test-marketer"
    assert client.post("/campaigns", json=greeting("greet")).status_code == 409
    clash = client.post("/campaigns", json=greeting("invite_leaders"))
    assert clash.status_code == 409 and "file" in clash.json()["error"]["message"]
    assert client.put("/campaigns/invite_leaders", json=greeting("invite_leaders")).status_code == 409
    listed = client.get("/campaigns").json()
    assert [(c["name"], c["source"]) for c in listed["items"]] == [
        ("greet", "saved"),
        ("invite_leaders", "file"),
    ]
    assert (
        client.get("/campaigns/invite_leaders").json()["definition"]["campaign"]["segment"] == "leaders.toml"
    )
    replaced = client.put("/campaigns/greet", json=greeting("greet", description="new words"))
    assert replaced.status_code == 200 and replaced.json()["description"] == "new words"
    unnamed = {"campaign": {k: v for k, v in greeting("x")["campaign"].items() if k != "name"}}
    assert client.put("/campaigns/greet2", json=unnamed).json()["name"] == "greet2"  # named by the path
    by_file = client.put("/campaigns/greet2", json=greeting("greet2", segment="leaders.toml"))
    assert by_file.status_code == 200, by_file.text  # a segment file of the folder, by its file name
    mismatch = client.put("/campaigns/greet2", json=greeting("other"))
    assert mismatch.status_code == 422 and "named 'other'" in mismatch.json()["error"]["message"]
    assert client.delete("/campaigns/greet2").status_code == 204
    assert client.get("/campaigns/greet2").status_code == 404
    assert client.delete("/campaigns/invite_leaders").status_code == 409
    actions = w.count(
        "audit_log", "WHERE target = 'greet' AND action IN ('campaign.create', 'campaign.update')"
    )
    assert actions == 2
    assert get_campaign(w.store, w.settings, "greet").description == "new words"  # the CLI finds it too


def test_preview_and_dry_run(web_world: WebWorld) -> None:
    client = web_world.client("marketer")
    leaders = client.get("/segments/leaders/preview", params={"sample": 1}).json()
    shown = client.post("/campaigns/preview", json=greeting("draft"))
    assert shown.status_code == 200, shown.text
    answer = shown.json()
    first = leaders["sample"][0]
    assert answer["audience"] == leaders["count"] and answer["customer_id"] == first["customer_id"]
    text = f"Hi {first['name']}, leader of community {first['community']}"
    assert answer["messages"] == [
        {"variant": "main", "channel": "template", "text": text, "fields": {"first": text}}
    ]
    other = client.post("/campaigns/preview", params={"customer_id": 1}, json=greeting("draft")).json()
    assert other["customer_id"] == 1 and other["messages"][0]["text"].startswith("Hi ")
    missing = client.post("/campaigns/preview", params={"customer_id": 2_000_000_000}, json=greeting("draft"))
    assert missing.status_code == 404
    broken = client.post("/campaigns/preview", json=greeting("draft", text="Hi {{ nmae }}"))
    assert broken.status_code == 422 and broken.json()["error"]["code"] == "invalid_template"
    assert "'nmae' is undefined" in broken.json()["error"]["message"]
    dry = client.post("/campaigns/invite_leaders/dry-run", params={"sample": 2})
    assert dry.status_code == 200, dry.text
    result = dry.json()
    assert result["dry_run"] and set(result["variants"]) <= {"long", "short", "control"}
    planned = result["status"].get("would_send", 0) + result["status"].get("control", 0)
    assert sum(result["variants"].values()) == planned and len(result["samples"]) == min(2, planned)
    assert (
        web_world.count("campaign_run") == 0
        and web_world.count("saved_campaign", "WHERE name = 'draft'") == 0
    )
    assert client.post("/campaigns/nope/dry-run").status_code == 404


def test_roles(web_world: WebWorld) -> None:
    assert web_world.client(None).get("/campaigns").status_code == 401
    viewer = web_world.client("viewer")
    assert viewer.get("/campaigns").status_code == 200
    assert viewer.get("/campaigns/invite_leaders/report").status_code == 200
    for method, path, body in [
        ("POST", "/campaigns", greeting("v")),
        ("PUT", "/campaigns/v", greeting("v")),
        ("DELETE", "/campaigns/invite_leaders", None),
        ("POST", "/campaigns/invite_leaders/dry-run", None),
        ("PUT", "/campaigns/invite_leaders/schedule", {"cron": "0 10 * * *"}),
        ("POST", "/campaigns/invite_leaders/pause", None),
        ("POST", "/campaigns/invite_leaders/resume", None),
        ("POST", "/campaigns/invite_leaders/runs", {"run_key": "v1"}),
    ]:
        answer = viewer.request(method, path, json=body)
        assert answer.status_code == 403, (method, path, answer.text)
    assert web_world.count("campaign_state") == 0 and web_world.count("campaign_run") == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"campaign": {"name": "b", "action": "fax"}, "audience": {"role": "leader"}},
            "unknown action 'fax'",
        ),
        ({"campaign": {"name": "b", "action": "text"}}, "no audience"),
        ({"campaign": {"name": "b", "action": "text", "segment": "nobody"}}, "nobody"),
        (greeting("b", segment="/etc/passwd"), "no saved segment or segment file"),
        (greeting("b", segment="../campaigns.d/leaders.toml"), "no saved segment or segment file"),
        (greeting("b", segment=["leaders"]), "no saved segment or segment file"),
        (greeting("b", template_id=""), "a template campaign needs template_id"),
        (greeting("b", control_percent=100), "control_percent must be in [0, 100)"),
        (greeting("b", schedule={"cron": "61 * * * *"}), "schedule cron"),
        (greeting("b", schedule={"cron": "0 * * * *", "at": "2026-01-01"}), "exactly one of"),
        (greeting("b", trigger={"event": "birthday"}), "unknown trigger event"),
        (greeting("b", colour="red"), "unknown key 'colour' in [campaign]"),
        ({**greeting("b"), "extra": {}}, "unknown table [extra]"),
        (greeting("b/c"), "campaign name 'b/c'"),
        (greeting("b", text="Hi \x00"), "NUL"),
        (greeting("b", seed=10**40), "not a number a definition may hold"),
        ({"campaign": "b"}, "Input should be a valid dictionary"),
        ({"audience": {"role": "leader"}}, "campaign: Field required"),
    ],
)
def test_bad_definitions_are_a_422_with_the_parsers_message(
    web_world: WebWorld, body: dict[str, Any], message: str
) -> None:
    client = web_world.client("admin")
    before = client.get("/campaigns").json()["total"]
    created = client.post("/campaigns", json=body)
    assert created.status_code == 422, created.text
    assert message in created.json()["error"]["message"]
    assert client.put("/campaigns/b", json=body).status_code == 422
    if "name '" not in message:
        assert client.post("/campaigns/preview", json=body).status_code == 422
    assert client.get("/campaigns").json()["total"] == before


def test_schedule_pause_and_resume(web_world: WebWorld) -> None:
    w = web_world
    client = w.client("marketer")
    assert client.post("/campaigns", json=greeting("weekly")).status_code == 201
    scheduled = client.put("/campaigns/weekly/schedule", json={"cron": "0 10 * * mon"})
    assert scheduled.status_code == 200 and scheduled.json()["when"] == "cron 0 10 * * mon"
    assert scheduled.json()["definition"]["campaign"]["schedule"] == {"cron": "0 10 * * mon"}
    every = client.put("/campaigns/weekly/schedule", json={"interval_minutes": 90}).json()
    assert every["schedule"] == {"interval_minutes": 90} and every["when"] == "every 90 min"
    for bad in ({"cron": "0 10 * * mon", "at": "2026-05-01T10:00"}, {"cron": "nope"}, {"interval_minutes": 0},
                {"at": "tomorrow"}, {"every": 5}):  # fmt: skip
        answer = client.put("/campaigns/weekly/schedule", json=bad)
        assert answer.status_code == 422, (bad, answer.text)
    assert client.get("/campaigns/weekly").json()["schedule"] == {"interval_minutes": 90}
    assert client.put("/campaigns/weekly/schedule", json={}).json()["when"] == "manual"
    assert client.put("/campaigns/invite_leaders/schedule", json={"cron": "0 9 * * *"}).status_code == 409
    paused = client.post("/campaigns/invite_leaders/pause").json()
    assert paused == {"name": "invite_leaders", "paused": True, "changed": True}
    assert client.post("/campaigns/invite_leaders/pause").json()["changed"] is False
    listed = {c["name"]: c for c in client.get("/campaigns").json()["items"]}
    assert listed["invite_leaders"]["paused"] and not listed["weekly"]["paused"]
    refused = client.post("/campaigns/invite_leaders/runs", json={"run_key": "while-paused"})
    assert refused.status_code == 409 and "paused" in refused.json()["error"]["message"]
    assert client.post("/campaigns/invite_leaders/resume").json()["paused"] is False
    assert client.post("/campaigns/nope/pause").status_code == 404
    assert w.count("campaign_run") == 0
    assert w.count("audit_log", "WHERE action IN ('campaign.pause', 'campaign.resume')") == 3


def test_a_run_key_runs_once_and_the_report_compares_with_control(web_world: WebWorld) -> None:
    w = web_world
    client = w.client("marketer")
    assert client.post("/campaigns", json=mass("meetup")).status_code == 201
    first = client.post("/campaigns/meetup/runs", json={"run_key": "2026-spring"})
    assert first.status_code == 202, first.text
    assert first.json()["created"] and first.json()["run_key"] == "meetup@api:2026-spring"
    second = client.post("/campaigns/meetup/runs", json={"run_key": "2026-spring"})
    assert second.status_code in (200, 202) and not second.json()["created"]
    run = wait_done(client, "meetup", "2026-spring")
    assert join_runs(30)
    again = client.post("/campaigns/meetup/runs", json={"run_key": "2026-spring"})
    assert again.status_code == 200 and again.json() == {**again.json(), "created": False, "status": "done"}
    received = Counter(m["openid"] for m in w.sim.sent if m["kind"] == "mass")
    assert received and max(received.values()) == 1  # each leader once, however often it was posted
    assert run["counts"]["status"]["sent"] == len(received)
    assert run["counts"]["variants"]["main"] == len(received)
    assert run["counts"]["variants"]["control"] == run["counts"]["status"]["control"] > 0
    runs = client.get("/campaigns/meetup/runs").json()
    assert runs["total"] == 1 and runs["items"][0]["finished_at"] is not None
    report = client.get("/campaigns/meetup/report").json()
    groups = {g["group"]: g for g in report["groups"]}
    assert set(groups) == {"main", "control"} and groups["main"]["sent"] == len(received)
    low, high = groups["main"]["reply_uplift"][1:]
    assert low <= groups["main"]["reply_uplift"][0] <= high and groups["control"]["reply_uplift"] is None
    bad_key = client.post("/campaigns/meetup/runs", json={"run_key": "no spaces"})
    assert bad_key.status_code == 422
    assert w.count("audit_log", "WHERE action = 'campaign.run' AND target = 'meetup'") == 3


def test_a_campaign_is_not_deleted_while_a_run_sends(web_world: WebWorld) -> None:
    w = web_world
    client = w.client("marketer")
    assert client.post("/campaigns", json=mass("flash")).status_code == 201
    campaign = get_campaign(w.store, w.settings, "flash")
    now = utcnow()
    open_run(w.store, w.settings, campaign, "flash@api:k", now, now, None)  # planned, nothing sent yet
    refused = client.delete("/campaigns/flash")
    assert refused.status_code == 409 and "flash@api:k" in refused.json()["error"]["message"]
    with w.store.connect() as conn:
        planned = conn.execute(sa.text("SELECT count(*) FROM delivery WHERE status = 'planned'")).scalar_one()
    assert planned > 0
    assert client.post("/campaigns/flash/pause").status_code == 200
    sent_before = len(w.sim.sent)
    held = client.post("/campaigns/flash/runs", json={"run_key": "k"})
    assert held.status_code == 409 and "paused" in held.json()["error"]["message"]
    time.sleep(0.2)
    assert len(w.sim.sent) == sent_before
    assert client.post("/campaigns/flash/resume").status_code == 200
    going_on = client.post("/campaigns/flash/runs", json={"run_key": "k"})
    assert going_on.status_code == 202 and not going_on.json()["created"]
    wait_done(client, "flash", "k")
    assert join_runs(30)
    assert client.delete("/campaigns/flash").status_code == 204
    assert client.get("/campaigns/flash/runs").json()["total"] == 1  # its runs stay, for the reports
