"""The campaign pages: build with a live count and preview, dry run, run, pause, results; roles and CSRF."""

from __future__ import annotations

import re
import secrets

import httpx

from campaigns import library
from campaigns.launch import join_runs
from tests.web.dashboard_env import csrf_of, signed_in
from tests.web.world import WebWorld

AUDIENCE = 'subscribed = true\nrole = "leader"\n'


def _form(client: httpx.Client, **fields: str) -> dict[str, str]:
    page = client.get("/campaigns/new")
    assert page.status_code == 200
    return {
        "csrf_token": csrf_of(page.text),
        "action": "text",
        "segment": "",
        "audience": AUDIENCE,
        "text_a": "Hi {{ name or 'friend' }}, variant A",
        "text_b": "Variant B for a {{ stage }} customer",
        "control_percent": "20",
        "attribution_days": "7",
        **fields,
    }


def test_a_viewer_sees_campaigns_but_may_not_build_or_run_them(web_world: WebWorld) -> None:
    with signed_in(web_world, "viewer") as client:
        page = client.get("/campaigns/invite_leaders")
        assert page.status_code == 200 and 'data-testid="read-only"' in page.text
        assert (
            'data-testid="run-button"' not in page.text
            and "/campaigns/new" not in client.get("/campaigns").text
        )
        token = csrf_of(page.text)  # the logout form's: a valid token, still not allowed
        assert client.get("/campaigns/new").status_code == 403
        for path in (
            "/campaigns/new",
            "/campaigns/preview",
            "/campaigns/invite_leaders/dry-run",
            "/campaigns/invite_leaders/run",
            "/campaigns/invite_leaders/pause",
        ):
            answer = client.post(
                path, data={"csrf_token": token, "confirm": "yes", "run_key": "k1", "paused": "1"}
            )
            assert answer.status_code == 403, path
    assert web_world.count("campaign_run") == 0
    assert not library.is_paused(web_world.store, "invite_leaders")


def test_the_builder_counts_and_previews_then_saves(web_world: WebWorld) -> None:
    with signed_in(web_world, "marketer") as client:
        form = _form(client)
        preview = client.post("/campaigns/preview", data=form, headers={"HX-Request": "true"})
        assert preview.status_code == 200
        definition = {
            "campaign": {"action": "text", "text": "x"},
            "audience": {"subscribed": True, "role": "leader"},
        }
        expected = library.audience_count(web_world.store, web_world.settings, definition)
        assert expected > 0
        assert f'data-testid="audience-count" data-count="{expected}"' in preview.text
        rendered = re.findall(r'data-testid="preview">([^<]*)<', preview.text)
        assert (
            len(rendered) == 2 and "variant A" in rendered[0] and rendered[1].startswith("Variant B for a ")
        )
        assert "{{" not in "".join(rendered)
        bad = client.post("/campaigns/preview", data={**form, "audience": "role = ["})
        assert bad.status_code == 422 and "audience: not valid TOML" in bad.text
        unknown = client.post("/campaigns/preview", data={**form, "audience": "shoe_size = 42"})
        assert unknown.status_code == 422 and "shoe_size" in unknown.text
        broken = client.post("/campaigns/preview", data={**form, "text_a": "{{ name "})
        assert broken.status_code == 422
        unsafe = {**form, "name": f"unsafe_{secrets.token_hex(3)}", "text_a": "{{ ''.__class__ }}"}
        refused = client.post("/campaigns/new", data=unsafe)
        assert refused.status_code == 422 and "sandbox" in refused.text  # not saved: it cannot render
        for segment in ("/etc/passwd", "../config.toml", "no_such_segment"):
            answer = client.post("/campaigns/preview", data={**form, "segment": segment})
            assert answer.status_code == 422 and "no segment" in answer.text and "root:" not in answer.text
        name = f"spring_{secrets.token_hex(3)}"
        unnamed = client.post("/campaigns/new", data=form)
        assert unnamed.status_code == 422 and "give the campaign a name" in unnamed.text
        saved = client.post(
            "/campaigns/new", data={**form, "name": name, "description": "Spring <b>meetup</b>"}
        )
        assert saved.status_code == 303 and saved.headers["location"] == f"/campaigns/{name}"
        page = client.get(f"/campaigns/{name}")
        assert page.status_code == 200 and "Spring &lt;b&gt;meetup&lt;/b&gt;" in page.text
        again = client.post("/campaigns/new", data={**form, "name": name})
        assert again.status_code == 409 and "exists already" in again.text
        clash = client.post("/campaigns/new", data={**form, "name": "invite_leaders"})
        assert clash.status_code == 409
        assert (
            client.post("/campaigns/new", data={**form, "name": "x", "csrf_token": "nope"}).status_code == 403
        )
    names = {c.name for c in library.list_campaigns(web_world.store, web_world.settings)}
    assert name in names and unsafe["name"] not in names
    assert web_world.count("audit_log", "WHERE action = 'campaign.create' AND target = :n", n=name) == 1


def test_dry_run_run_pause_and_results(web_world: WebWorld) -> None:
    name = f"invite_{secrets.token_hex(3)}"
    with signed_in(web_world, "marketer") as client:
        form = _form(client, name=name, text_b="", template_id="TPL_EVENT")
        assert client.post("/campaigns/new", data=form).status_code == 303
        page = client.get(f"/campaigns/{name}")
        token = csrf_of(page.text)
        htmx = {"HX-Request": "true", "X-CSRF-Token": token}  # as htmx sends it: the header, no field
        assert (
            client.post(f"/campaigns/{name}/dry-run", headers={**htmx, "X-CSRF-Token": "x"}).status_code
            == 403
        )
        dry = client.post(f"/campaigns/{name}/dry-run", headers=htmx)
        assert (
            dry.status_code == 200 and 'data-testid="dry-run-result"' in dry.text and "<html" not in dry.text
        )
        plain = client.post(f"/campaigns/{name}/dry-run", data={"csrf_token": token})  # no JavaScript
        assert (
            plain.status_code == 200
            and "<html" in plain.text
            and 'data-testid="dry-run-result"' in plain.text
        )
        assert web_world.count("campaign_run", "WHERE campaign = :n", n=name) == 0  # nothing stored
        unconfirmed = client.post(f"/campaigns/{name}/run", data={"csrf_token": token, "run_key": "r1"})
        assert unconfirmed.status_code == 422
        key = re.search(r'name="run_key" value="([^"]+)"', page.text)
        assert key
        form = {"csrf_token": token, "run_key": key.group(1), "confirm": "yes"}
        assert f'href="/campaigns/{name}"' not in client.get("/overview").text  # figures now kept a minute
        started = client.post(f"/campaigns/{name}/run", data=form)
        assert started.status_code == 303 and "started=" in started.headers["location"]
        assert join_runs(60)
        assert client.post(f"/campaigns/{name}/run", data=form).status_code == 303  # the same click again
        assert join_runs(60)
        assert web_world.count("campaign_run", "WHERE campaign = :n", n=name) == 1
        runs = web_world.count(
            "delivery", "WHERE run_id IN (SELECT id FROM campaign_run WHERE campaign = :n)", n=name
        )
        assert runs > 0
        assert f'href="/campaigns/{name}"' in client.get("/overview").text  # the run shows at once
        results = client.get(f"/campaigns/{name}").text
        assert 'data-testid="result-row" data-group="control"' in results
        assert 'data-testid="run-row"' in results and 'data-testid="reply-uplift"' in results
        assert (
            client.post(f"/campaigns/{name}/pause", data={"csrf_token": token, "paused": "1"}).status_code
            == 303
        )
        assert library.is_paused(web_world.store, name)
        assert 'data-testid="paused"' in client.get("/campaigns").text
        assert (
            client.post(f"/campaigns/{name}/pause", data={"csrf_token": token, "paused": "0"}).status_code
            == 303
        )
        assert not library.is_paused(web_world.store, name)
        assert client.get("/campaigns/no_such_campaign").status_code == 404
        assert client.post("/campaigns/config.toml/dry-run", data={"csrf_token": token}).status_code == 404
