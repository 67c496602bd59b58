"""GET /rules and POST /rules/try: the bot's reply rules and which one answers, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from tests.web.world import WebWorld


def test_rules_in_the_order_they_are_tried(web_world: WebWorld) -> None:
    page = web_world.client("viewer").get("/rules").json()
    assert [(r["name"], r["match"], r["priority"]) for r in page["items"]] == [
        ("help", "exact", 10),
        ("welcome", "subscribe", 0),
        ("news", "click", 0),
        ("fallback", "default", -100),
    ]
    assert page["total"] == 4 and page["items"][2]["on"] == "MENU_NEWS"
    second = web_world.client("viewer").get("/rules", params={"limit": 1, "offset": 1}).json()
    assert [r["name"] for r in second["items"]] == ["welcome"] and second["total"] == 4


def test_try_a_text_an_event_and_a_click(web_world: WebWorld) -> None:
    client = web_world.client("viewer")
    help_ = client.post("/rules/try", json={"text": "HELP"}).json()
    assert help_["rule"] == "help" and help_["text"] and not help_["fell_back"]
    other = client.post("/rules/try", json={"text": "where are you?"}).json()
    assert other["rule"] == "fallback"
    welcome = client.post("/rules/try", json={"event": "subscribe", "scene": "store_bj_01"}).json()
    assert welcome["rule"] == "welcome" and "store_bj_01" in welcome["text"]
    news = client.post("/rules/try", json={"event": "click", "key": "MENU_NEWS"}).json()
    assert news["rule"] == "news" and news["text"] == ""
    assert news["articles"][0]["url"] == "https://example.com/w?o=o_try"


def test_try_with_a_stored_follower(web_world: WebWorld) -> None:
    with web_world.store.connect() as conn:
        openid, channel = conn.execute(
            sa.text(
                "SELECT i.value, f.channel FROM identity i JOIN follow f ON f.customer_id = i.customer_id "
                "WHERE i.kind = 'openid' AND f.channel <> '' ORDER BY i.id LIMIT 1"
            )
        ).one()
    news = (
        web_world.client("viewer")
        .post("/rules/try", json={"event": "click", "key": "MENU_NEWS", "openid": openid, "account": "brand"})
        .json()
    )
    assert news["articles"][0]["title"] == f"This week at {channel}"
    assert news["articles"][0]["url"].endswith(openid)
    stored = web_world.count("inbound_message")
    assert stored == 0  # nothing is stored by a try


@pytest.mark.parametrize(
    "body",
    [
        {"event": "wave"},
        {"text": 5},
        {"text": "x" * 2049},
        {"text": "a\x00"},
        {"openid": "o\x00"},
        {"account": "nope"},
        {"extra": 1, "event": "poke"},
        [],
    ],
)
def test_bad_try_requests_are_422(web_world: WebWorld, body: Any) -> None:
    answer = web_world.client("viewer").post("/rules/try", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid"


def test_try_needs_a_json_body(web_world: WebWorld) -> None:
    client = web_world.client("viewer")
    answer = client.post("/rules/try", content=b"{not json", headers={"Content-Type": "application/json"})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid"
    assert client.post("/rules/try").status_code == 422
