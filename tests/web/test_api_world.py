"""The shared web world: a scored store served with a token per role."""

from __future__ import annotations

from tests.web.world import WebWorld


def test_world_serves_the_api_with_a_token_per_role(web_world: WebWorld) -> None:
    for role in ("viewer", "marketer", "admin"):
        answer = web_world.client(role).get("/customers", params={"limit": 5})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert page["total"] >= 250 and len(page["items"]) == 5
    assert web_world.count("purchase") > 0
    assert web_world.count("score_run", "WHERE status = :s", s="done") == 1
    assert web_world.client(None).get("/customers").status_code == 401
