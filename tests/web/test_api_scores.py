"""GET /leaderboard, /funnel, /churn, /communities and /communities/{id}, on SQLite and PostgreSQL; 409
before the first `scrm score`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.wechat_sim.serving import BackgroundServer
from scrm.access import create_token
from scrm.config import load_settings
from scrm.store import Store
from scrm.web import create_app
from tests.web.world import WebWorld


def pages(world: WebWorld, path: str, size: int, **params: Any) -> Iterator[dict[str, Any]]:
    """Every page of a list, ``size`` items at a time."""
    client = world.client("viewer")
    offset = 0
    while True:
        page = client.get(path, params={**params, "limit": size, "offset": offset})
        assert page.status_code == 200, page.text
        yield page.json()
        offset += size
        if offset >= page.json()["total"]:
            return


@pytest.mark.parametrize(
    ("by", "column"),
    [
        ("social", "social_value"),
        ("influence", "influence"),
        ("reach", "reach_two_hop"),
        ("value", "clv_minor"),
    ],
)
def test_leaderboard_pages_rank_every_scored_customer(web_world: WebWorld, by: str, column: str) -> None:
    items = [item for page in pages(web_world, "/leaderboard", 70, by=by) for item in page["items"]]
    assert len(items) == web_world.count("customer_score") == len({i["customer_id"] for i in items})
    assert [i["rank"] for i in items] == list(range(1, len(items) + 1))
    values = [i[column] for i in items]
    assert values == sorted(values, reverse=True)
    top = items[0]
    assert sum(top["points"].values()) == pytest.approx(top["social_value"], abs=0.05)


def test_leaderboard_of_one_community(web_world: WebWorld) -> None:
    client = web_world.client("viewer")
    community = client.get("/communities", params={"limit": 1}).json()["items"][0]
    board = client.get("/leaderboard", params={"community": community["community_id"], "limit": 500}).json()
    assert board["total"] == community["size"] == len(board["items"])
    assert {i["community_id"] for i in board["items"]} == {community["community_id"]}
    assert {p["id"] for p in community["leaders"]} <= {i["customer_id"] for i in board["items"]}
    nobody = client.get("/leaderboard", params={"community": 99_999}).json()
    assert nobody["total"] == 0 and nobody["items"] == []


def test_communities_with_leaders_bridges_and_members(web_world: WebWorld) -> None:
    found = [c for page in pages(web_world, "/communities", 7) for c in page["items"]]
    assert len(found) == web_world.count("community") and len(found) > 7
    sizes = [c["size"] for c in found]
    assert sizes == sorted(sizes, reverse=True)
    assert all(c["leaders"] for c in found if c["size"] > 2)
    bridges = web_world.count("customer_score", "WHERE is_bridge = :yes", yes=True)
    assert any(c["top_bridges"] for c in found) == (bridges > 0)
    community = found[1]
    members = [
        m for page in pages(web_world, f"/communities/{community['community_id']}", 5) for m in page["items"]
    ]
    assert len(members) == community["size"]
    assert {m["community_id"] for m in members} == {community["community_id"]}
    detail = web_world.client("viewer").get(f"/communities/{community['community_id']}").json()
    assert detail["community"] == community
    missing = web_world.client("viewer").get("/communities/99999")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert web_world.client("viewer").get("/communities/-1").status_code == 422


def test_funnel(web_world: WebWorld) -> None:
    funnel = web_world.client("viewer").get("/funnel").json()
    assert [s["stage"] for s in funnel["stages"]][:3] == ["prospect", "new", "active"]
    assert sum(s["customers"] for s in funnel["stages"]) == web_world.count("customer_score")
    assert funnel["run_id"] >= 1 and funnel["conversion"]


def test_churn_pages(web_world: WebWorld) -> None:
    open_warnings = web_world.count("churn_warning", "WHERE resolved_at IS NULL")
    assert open_warnings > 5
    items = [w for page in pages(web_world, "/churn", 5) for w in page["items"]]
    assert len(items) == open_warnings == len({w["customer_id"] for w in items})
    assert all(w["reasons"] for w in items)


@pytest.fixture
def unscored_api(store: Store, tmp_path: Any) -> Iterator[tuple[str, str]]:
    """The API of a store with no scores: (base URL, a viewer token)."""
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{store.url}"\n', encoding="utf-8")
    app = create_app(load_settings(config, environ={}), store=store)
    with BackgroundServer(app) as server:
        yield server.base_url + "/api/v1", create_token(store, "t", "viewer")
    app.state.bot.close()


def test_no_scores_yet_is_409(unscored_api: tuple[str, str]) -> None:
    base, token = unscored_api
    paths = ["/leaderboard", "/funnel", "/churn", "/communities", "/communities/1"]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        for path in [*paths, "/customers?stage=new", "/customers/1/explain"]:
            answer = client.get(path)
            assert answer.status_code == 409, (path, answer.text)
            assert answer.json()["error"] == {
                "code": "no_scores",
                "message": "there are no scores yet: run `scrm score` first",
            }
        assert client.get("/customers").json()["total"] == 0
