"""/segments: the folder's segment files and saved segments, create / replace / delete, previews, roles
and bad bodies, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.world import WebWorld

ACTIVE = {"description": "active leaders", "where": {"role": "leader", "subscribed": True}}


def nested(levels: int) -> dict[str, Any]:
    """``not`` within ``not`` ... ``levels`` deep."""
    where: dict[str, Any] = {"role": "leader"}
    for _ in range(levels):
        where = {"not": where}
    return where


def test_files_and_saved_segments_share_one_list_and_name_space(web_world: WebWorld) -> None:
    w = web_world
    client = w.client("marketer")
    listed = client.get("/segments").json()
    assert [(s["name"], s["source"]) for s in listed["items"]] == [("leaders", "file")]
    assert listed["items"][0]["definition"]["where"]["role"] == "leader"
    created = client.post("/segments", json={"name": "active_leaders", **ACTIVE})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["source"], body["definition"], body["created_by"]) == (
        "saved",
        ACTIVE,
        "token:test-marketer",
    )
    again = client.post("/segments", json={"name": "active_leaders", **ACTIVE})
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    clash = client.post("/segments", json={"name": "leaders", **ACTIVE})
    assert clash.status_code == 409 and "file" in clash.json()["error"]["message"]
    assert client.put("/segments/leaders", json=ACTIVE).status_code == 409
    page = client.get("/segments", params={"limit": 1, "offset": 1}).json()
    assert page["total"] == 2 and [s["name"] for s in page["items"]] == ["leaders"]
    replaced = client.put("/segments/active_leaders", json={"where": {"role": "bridge"}})
    assert replaced.status_code == 200 and replaced.json()["definition"]["where"] == {"role": "bridge"}
    assert w.count("audit_log", "WHERE target = :t AND action LIKE 'segment.%'", t="active_leaders") == 2
    assert client.delete("/segments/active_leaders").status_code == 204
    assert client.get("/segments/active_leaders").status_code == 404
    assert client.delete("/segments/active_leaders").status_code == 404
    assert client.delete("/segments/leaders").status_code == 409  # a file: delete the file


def test_previews_count_what_the_segment_selects(web_world: WebWorld) -> None:
    client = web_world.client("viewer")
    by_name = client.get("/segments/leaders/preview", params={"sample": 5}).json()
    leaders = web_world.count(
        "customer_score",
        "WHERE is_leader AND run_id = (SELECT max(id) FROM score_run WHERE status = 'done')",
    )
    assert 0 < by_name["count"] <= leaders and len(by_name["sample"]) == min(5, by_name["count"])
    values = [row["social_value"] for row in by_name["sample"]]
    assert values == sorted(values, reverse=True)
    same = client.post("/segments/preview", json=client.get("/segments/leaders").json()["definition"])
    assert same.status_code == 200 and same.json()["count"] == by_name["count"]
    wider = client.post("/segments/preview", json={"where": {"role": {"in": ["leader", "bridge"]}}}).json()
    assert wider["count"] >= leaders
    assert web_world.count("saved_segment") == 0  # previews save nothing


def test_roles(web_world: WebWorld) -> None:
    assert web_world.client(None).get("/segments").status_code == 401
    viewer = web_world.client("viewer")
    assert viewer.get("/segments").status_code == 200
    assert viewer.post("/segments", json={"name": "x", **ACTIVE}).status_code == 403
    assert viewer.put("/segments/x", json=ACTIVE).status_code == 403
    assert viewer.delete("/segments/leaders").status_code == 403
    assert web_world.count("saved_segment") == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "x", "where": {"rol": "leader"}}, "unknown field 'rol'"),
        ({"name": "x", "where": {"role": "king"}}, "give one of leader, bridge, member"),
        ({"name": "x", "where": {"social_value": {"top_percent": 500}}}, "in (0, 100]"),
        ({"name": "x", "where": {}}, "give a table of conditions"),
        ({"name": "x"}, "where: Field required"),
        ({"name": "x", "where": {"role": "leader"}, "colour": "red"}, "unknown key 'colour'"),
        ({"name": "a/b", "where": {"role": "leader"}}, "segment name 'a/b'"),
        ({"name": "x", "where": {"channel": "a\x00b"}}, "NUL"),
        ({"name": "x", "where": {"purchases": {"gt": 10**30}}}, "not a number a definition may hold"),
        ({"name": "x", "where": nested(20)}, "nested more than"),
        ([1, 2], "Input should be a valid dictionary"),
    ],
)
def test_bad_bodies_are_a_422_with_the_parsers_message(web_world: WebWorld, body: Any, message: str) -> None:
    client = web_world.client("admin")
    answer = client.post("/segments", json=body)
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["error"]["message"]
    if isinstance(body, dict) and "where" in body and "name '" not in message:
        preview = client.post("/segments/preview", json={k: v for k, v in body.items() if k != "name"})
        assert preview.status_code == 422
    assert web_world.count("saved_segment") == 0


def test_a_body_that_is_not_json_is_a_422(web_world: WebWorld) -> None:
    answer = web_world.client("admin").post(
        "/segments", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid"
