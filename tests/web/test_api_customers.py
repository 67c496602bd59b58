"""GET /customers (search, filters on the latest scores, paging), GET /customers/{id} (the 360° view) and
GET /customers/{id}/explain, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import get_args

import pytest
import sqlalchemy as sa

from graph.lifecycle import STAGES
from graph.snapshots import score_t
from scrm.web.api.models import Stage
from tests.web.world import WebWorld


def latest_scores(world: WebWorld) -> list[sa.Row[tuple[int, str, int | None, bool, float]]]:
    s = score_t.c
    with world.store.connect() as conn:
        run = conn.execute(sa.text("SELECT max(id) FROM score_run WHERE status = 'done'")).scalar_one()
        return list(
            conn.execute(
                sa.select(s.customer_id, s.stage, s.community_id, s.is_leader, s.social_value).where(
                    s.run_id == run
                )
            ).all()
        )


def test_stages_of_the_api_are_the_lifecycle_stages() -> None:
    assert get_args(Stage) == STAGES


def test_list_pages_add_up_to_every_customer(web_world: WebWorld) -> None:
    client = web_world.client("viewer")
    first = client.get("/customers", params={"limit": 100}).json()
    total = first["total"]
    assert total == web_world.count("customer", "WHERE merged_into_id IS NULL") and total > 100
    seen = [c["id"] for c in first["items"]]
    offset = 100
    while offset < total:
        page = client.get("/customers", params={"limit": 100, "offset": offset}).json()
        assert page["total"] == total and page["offset"] == offset
        seen += [c["id"] for c in page["items"]]
        offset += 100
    assert len(seen) == len(set(seen)) == total and seen == sorted(seen)
    beyond = client.get("/customers", params={"offset": total + 5}).json()
    assert beyond["items"] == [] and beyond["total"] == total


def test_search_and_sort(web_world: WebWorld) -> None:
    client = web_world.client("viewer")
    buyer = client.get("/customers", params={"sort": "spent", "limit": 3}).json()["items"]
    spent = [sum(c["spent_minor"].values()) for c in buyer]
    assert spent == sorted(spent, reverse=True) and spent[0] > 0
    key = buyer[0]["keys"][0].split(":", 1)[1]
    found = client.get("/customers", params={"q": key[3:15]}).json()
    assert [c["id"] for c in found["items"]] == [buyer[0]["id"]] and found["total"] == 1
    nothing = client.get("/customers", params={"q": "%_no such customer_%"}).json()
    assert nothing == {"total": 0, "limit": 50, "offset": 0, "items": []}


def test_filters_on_the_latest_scores(web_world: WebWorld) -> None:
    client = web_world.client("viewer")
    scores = latest_scores(web_world)
    for stage in ("prospect", "active", "at_risk"):
        expected = sorted(r.customer_id for r in scores if r.stage == stage)
        page = client.get("/customers", params={"stage": stage, "limit": 500}).json()
        assert [c["id"] for c in page["items"]] == expected and page["total"] == len(expected)
    leaders = client.get("/customers", params={"role": "leader", "limit": 500}).json()
    assert {c["id"] for c in leaders["items"]} == {r.customer_id for r in scores if r.is_leader}
    community = next(r.community_id for r in scores if r.community_id is not None)
    both = client.get(
        "/customers", params={"community": community, "min_social_value": 20, "limit": 500}
    ).json()
    expected = {r.customer_id for r in scores if r.community_id == community and r.social_value >= 20}
    assert {c["id"] for c in both["items"]} == expected and both["total"] == len(expected)


@pytest.mark.parametrize(
    "params",
    [
        {"stage": "sleeping"},
        {"role": "king"},
        {"min_social_value": "101"},
        {"min_social_value": "nan"},
        {"community": "-1"},
        {"community": str(2**40)},
        {"sort": "name"},
        {"limit": "0"},
        {"limit": "501"},
        {"offset": "-1"},
        {"q": "x" * 201},
        {"q": "a\x00b"},
    ],
)
def test_bad_list_parameters_are_422(web_world: WebWorld, params: dict[str, str]) -> None:
    answer = web_world.client("viewer").get("/customers", params=params)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid" and next(iter(params)) in error["message"]


def test_the_360_view_of_a_customer_reached_by_a_campaign(web_world: WebWorld) -> None:
    result = web_world.run_campaign("invite_leaders")
    assert result.counts.status.get("sent", 0) > 0
    with web_world.store.connect() as conn:
        reached = conn.execute(
            sa.text("SELECT customer_id FROM delivery WHERE status = 'sent' ORDER BY customer_id LIMIT 1")
        ).scalar_one()
    view = web_world.client("viewer").get(f"/customers/{reached}").json()
    assert view["id"] == reached and view["merged_from"] is None
    assert any(i["kind"] == "openid" and i["account"] == "brand" for i in view["identities"])
    assert view["follows"] and view["follows"][0]["account"] == "brand"
    (delivery,) = view["deliveries"]
    assert delivery["campaign"] == "invite_leaders" and delivery["status"] == "sent"
    assert view["score"]["is_leader"] is True and view["score_history"][0] == view["score"]
    assert view["stage_history"] and view["stage_history"][0]["to_stage"] == view["score"]["stage"]
    assert view["stage_history"][-1]["from_stage"] == ""


def test_the_360_view_has_purchases_and_interactions(web_world: WebWorld) -> None:
    client = web_world.client("viewer")
    buyer = client.get("/customers", params={"sort": "orders", "limit": 1}).json()["items"][0]
    view = client.get(f"/customers/{buyer['id']}", params={"limit": 2}).json()
    assert len(view["purchases"]) == min(2, buyer["orders"])
    assert view["purchase_totals"]["CNY"]["orders"] == buyer["orders"]
    assert view["purchase_totals"]["CNY"]["spent_minor"] == buyer["spent_minor"]["CNY"]
    with web_world.store.connect() as conn:
        talker = conn.execute(
            sa.text("SELECT customer_id FROM interaction ORDER BY customer_id LIMIT 1")
        ).scalar_one()
    assert client.get(f"/customers/{talker}").json()["interactions"]


def test_explain(web_world: WebWorld) -> None:
    client = web_world.client("viewer")
    top = client.get("/leaderboard", params={"limit": 1}).json()["items"][0]
    explained = client.get(f"/customers/{top['customer_id']}/explain").json()
    assert explained["customer_id"] == top["customer_id"]
    assert explained["social_value"] == top["social_value"]
    points = sum(c["points"] for c in explained["components"])
    assert points == pytest.approx(top["social_value"], abs=0.05)
    assert explained["history"][0]["social_value"] == top["social_value"]


@pytest.mark.parametrize("path", ["/customers/{}", "/customers/{}/explain"])
def test_unknown_and_bad_customer_ids(web_world: WebWorld, path: str) -> None:
    client = web_world.client("viewer")
    missing = client.get(path.format(999_999))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    for bad in ("0", "-3", "abc", str(2**63), "1.5"):
        answer = client.get(path.format(bad))
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.json()["error"]["code"] == "invalid"
