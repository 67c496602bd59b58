"""The WeCom simulator over real HTTP: wire shapes against WeCom's own examples, paging, errors, clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from connectors.wechat_sim import generate_population
from connectors.wecom_sim import WeComPopulation, WeComSimulator, generate_wecom_population

DATA = Path(__file__).resolve().parents[1] / "data" / "wecom"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def pop() -> WeComPopulation:
    return generate_wecom_population(1500, groups=80, memberships=2500, staff=12, seed=5)


class Api:
    """A plain HTTP client of the simulator (no wechatpy: the wire format itself is under test)."""

    def __init__(self, sim: WeComSimulator) -> None:
        self.sim = sim
        self.http = httpx.Client(base_url=sim.base_url + "/cgi-bin/")
        self.renew()

    def renew(self) -> None:
        """A new access token (the old one expires 7,200 simulated seconds after it was issued)."""
        sim = self.sim
        answer = self.http.get("gettoken", params={"corpid": sim.corpid, "corpsecret": sim.secret}).json()
        self.token = answer["access_token"]

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        data: dict[str, Any] = self.http.get(path, params={"access_token": self.token, **params}).json()
        return data

    def post(self, path: str, body: Any) -> dict[str, Any]:
        data: dict[str, Any] = self.http.post(path, params={"access_token": self.token}, json=body).json()
        return data


@pytest.fixture
def sim(pop: WeComPopulation) -> Iterator[WeComSimulator]:
    with WeComSimulator(pop, per_minute={"externalcontact/get_follow_user_list": 3}) as server:
        yield server


@pytest.fixture
def api(sim: WeComSimulator) -> Iterator[Api]:
    client = Api(sim)
    yield client
    client.http.close()


def keys(data: Any) -> Any:
    """The shape of a JSON value: keys of objects (recursively, the first item of lists)."""
    if isinstance(data, dict):
        return {k: keys(v) for k, v in data.items()}
    if isinstance(data, list):
        return [keys(data[0])] if data else []
    return type(data).__name__


def test_the_population_is_reproducible_and_heavy_tailed(pop: WeComPopulation) -> None:
    again = generate_wecom_population(1500, groups=80, memberships=2500, staff=12, seed=5)
    assert again.contacts == pop.contacts and again.groups == pop.groups
    assert np.array_equal(again.m_who, pop.m_who)
    sizes = np.diff(pop.group_range)
    assert pop.memberships == pytest.approx(2500, rel=0.1)
    assert sizes.max() > 4 * np.median(sizes)  # a few big groups, many small ones
    # invitation chains: customers invited by customers who were themselves invited
    invited_by_customer = pop.m_invitor_kind == 2
    assert invited_by_customer.sum() > 100
    invitee_of = {
        (int(g), int(w)) for g, w, k in zip(pop.m_group, pop.m_who, pop.m_kind, strict=True) if k == 2
    }
    chained = [
        (int(g), int(i)) in invitee_of
        for g, i, kind, sc in zip(pop.m_group, pop.m_invitor, pop.m_invitor_kind, pop.m_scene, strict=True)
        if kind == 2 and sc == 1
    ]
    assert any(chained)
    assert np.all(pop.m_join[invited_by_customer] >= pop.g_time[pop.m_group[invited_by_customer]])


def test_contacts_share_the_unionids_given() -> None:
    wechat = generate_population(followers=200, seed=3)
    unionids = [u for u in wechat.unionids if u]
    corp = generate_wecom_population(300, unionids=unionids, seed=3)
    shared = set(unionids) & {u for u in corp.contact_unionids if u}
    assert len(shared) == len(unionids)  # every given unionid is some contact's
    assert len({u for u in corp.contact_unionids if u}) > len(shared)  # others have their own


def test_answers_have_wecoms_shapes(api: Api, sim: WeComSimulator, pop: WeComPopulation) -> None:
    assert keys(fixture("gettoken")).keys() <= {"access_token", "expires_in"}
    simple = api.get("user/simplelist", department_id=1, fetch_child=1)
    assert keys(fixture("user_simplelist"))["userlist"][0].keys() <= keys(simple)["userlist"][0].keys()
    staff = api.get("externalcontact/get_follow_user_list")
    assert keys(staff) == keys(fixture("externalcontact_get_follow_user_list"))
    userid = staff["follow_user"][0]
    listed = api.get("externalcontact/list", userid=userid)
    assert keys(listed) == keys(fixture("externalcontact_list"))
    one = api.get("externalcontact/get", external_userid=listed["external_userid"][0])
    expected = fixture("externalcontact_get")
    assert {"external_userid", "name", "type", "gender"} <= one["external_contact"].keys()
    assert {"userid", "createtime", "remark", "description", "tags"} <= one["follow_user"][0].keys()
    assert one.keys() == expected.keys()
    batch = api.post("externalcontact/batch/get_by_user", {"userid_list": [userid], "limit": 5})
    reference = fixture("externalcontact_batch_get_by_user")
    assert batch.keys() == reference.keys()
    entry, ref_entry = batch["external_contact_list"][0], reference["external_contact_list"][1]
    assert entry["external_contact"].keys() <= ref_entry["external_contact"].keys()
    assert {"createtime", "add_way", "oper_userid", "tag_id"} <= entry["follow_info"].keys()
    chats = api.post("externalcontact/groupchat/list", {"limit": 2})
    assert keys(chats) == keys(fixture("externalcontact_groupchat_list"))
    chat = api.post("externalcontact/groupchat/get", {"chat_id": chats["group_chat_list"][0]["chat_id"]})
    ref_chat = fixture("externalcontact_groupchat_get")["group_chat"]
    assert ref_chat.keys() <= chat["group_chat"].keys()
    customer = next(m for m in chat["group_chat"]["member_list"] if m["type"] == 2)
    assert {"userid", "type", "join_time", "join_scene"} <= customer.keys()


def visible_follows(pop: WeComPopulation, s: int, now: int) -> list[str]:
    rows = range(int(pop.staff_range[s]), int(pop.staff_range[s + 1]))
    return [
        pop.contacts[int(pop.f_contact[r])]
        for r in rows
        if pop.f_time[r] <= now and not 0 < pop.f_removed[r] <= now
    ]


def test_contacts_page_by_cursor_through_every_follow(
    api: Api, sim: WeComSimulator, pop: WeComPopulation
) -> None:
    staff = api.get("externalcontact/get_follow_user_list")["follow_user"]
    now = sim.clock.timestamp()
    seen: list[tuple[str, str]] = []
    cursor, pages = "", 0
    while True:
        page = api.post(
            "externalcontact/batch/get_by_user", {"userid_list": staff, "cursor": cursor, "limit": 100}
        )
        assert page["errcode"] == 0 and len(page["external_contact_list"]) <= 100
        seen += [
            (e["follow_info"]["userid"], e["external_contact"]["external_userid"])
            for e in page["external_contact_list"]
        ]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    expected = [(u, c) for u in staff for c in visible_follows(pop, pop.staff.index(u), now)]
    assert seen == expected and pages > 3
    for u in staff[:3]:
        assert api.get("externalcontact/list", userid=u)["external_userid"] == visible_follows(
            pop, pop.staff.index(u), now
        )


def test_groups_page_by_cursor_and_filter_by_status(
    api: Api, sim: WeComSimulator, pop: WeComPopulation
) -> None:
    now = sim.clock.timestamp()
    ids, cursor = [], None
    while True:
        body: dict[str, Any] = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = api.post("externalcontact/groupchat/list", body)
        ids += [g["chat_id"] for g in page["group_chat_list"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert ids == [c for c, t in zip(pop.groups, pop.g_time, strict=True) if t <= now]
    resigned = api.post("externalcontact/groupchat/list", {"status_filter": 1, "limit": 1000})[
        "group_chat_list"
    ]
    assert {g["status"] for g in resigned} <= {1}
    assert len(resigned) == int(((pop.g_status == 1) & (pop.g_time <= now)).sum())


def test_members_join_and_leave_as_the_clock_moves(
    api: Api, sim: WeComSimulator, pop: WeComPopulation
) -> None:
    def members(g: int) -> set[str]:
        chat = api.post("externalcontact/groupchat/get", {"chat_id": pop.groups[g]})["group_chat"]
        return {m["userid"] for m in chat["member_list"]}

    later = pop.m_leave > sim.clock.timestamp()
    g = int(pop.m_group[np.flatnonzero(later)[0]])
    before = members(g)
    sim.clock.advance(days=pop.future_days + 1)
    api.renew()
    after = members(g)
    left = {
        pop.contacts[int(w)]
        for w, grp, t in zip(pop.m_who, pop.m_group, pop.m_leave, strict=True)
        if grp == g and t and t > 0 and t <= sim.clock.timestamp()
    }
    assert left and not left & after
    assert before != after


def test_errors_have_wecoms_codes(api: Api, sim: WeComSimulator, pop: WeComPopulation) -> None:
    http = api.http
    assert (
        http.get("gettoken", params={"corpid": "wrong", "corpsecret": sim.secret}).json()["errcode"] == 40013
    )
    assert http.get("gettoken", params={"corpid": sim.corpid, "corpsecret": "x"}).json()["errcode"] == 40001
    assert http.get("externalcontact/get_follow_user_list").json()["errcode"] == 41001
    assert (
        http.get("externalcontact/get_follow_user_list", params={"access_token": "nope"}).json()["errcode"]
        == 40014
    )
    restricted = pop.staff[int(np.flatnonzero(~pop.staff_enabled)[0])]
    assert api.get("externalcontact/list", userid=restricted)["errcode"] == 60011
    assert api.get("externalcontact/list", userid="nobody")["errcode"] == 60111
    assert api.get("externalcontact/get", external_userid="wmNotAContact")["errcode"] == 84061
    assert api.post("externalcontact/groupchat/get", {"chat_id": "wrGone"})["errcode"] == 40050
    bad = api.post("externalcontact/groupchat/list", {"cursor": "!!!", "limit": 10})
    assert bad["errcode"] == 40058
    assert api.post("externalcontact/groupchat/list", {"limit": 1001})["errcode"] == 40058
    assert api.post("externalcontact/batch/get_by_user", {"userid_list": []})["errcode"] == 40058
    for _ in range(3):
        assert api.get("externalcontact/get_follow_user_list")["errcode"] == 0
    assert api.get("externalcontact/get_follow_user_list")["errcode"] == 45009  # 3 a minute
    sim.clock.advance(60)
    assert api.get("externalcontact/get_follow_user_list")["errcode"] == 0
    sim.clock.advance(7200)
    assert api.get("externalcontact/get_follow_user_list")["errcode"] == 42001


def test_requests_are_logged_without_tokens_or_secrets(api: Api, sim: WeComSimulator) -> None:
    api.get("externalcontact/get_follow_user_list")
    logged = json.dumps(sim.requests())
    assert sim.secret not in logged and api.token not in logged
    assert [r["path"] for r in sim.requests()] == [
        "/cgi-bin/gettoken",
        "/cgi-bin/externalcontact/get_follow_user_list",
    ]


def test_the_events_feed_lists_deletions_up_to_the_clock(sim: WeComSimulator, pop: WeComPopulation) -> None:
    now = sim.clock.timestamp()
    events, cursor = [], ""
    with httpx.Client() as http:
        while True:
            page = http.get(sim.events_url, params={"cursor": cursor, "limit": 10}).json()
            events += page["events"]
            cursor = page["next_cursor"]
            if not page["has_more"]:
                break
    removed = (pop.f_removed > 0) & (pop.f_removed <= now)
    assert len(events) == int(removed.sum()) > 0
    by_staff = sum(e["change_type"] == "del_external_contact" for e in events)
    assert by_staff == int((removed & (pop.f_removed_by == 1)).sum())
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)


def test_the_packages_public_names_are_pinned() -> None:
    import connectors.wecom_sim as package

    assert set(package.__all__) == {
        "CHANNELS",
        "TOKEN_SECONDS",
        "WeComCredentials",
        "WeComPopulation",
        "WeComSimulator",
        "generate_wecom_population",
    }
