"""The WeCom connector through wechatpy against the simulator: reads, paging, bounded retries, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.base import GroupConnector
from connectors.wecom import WeComConnector, parse_group
from connectors.wecom_sim import WeComPopulation, WeComSimulator, generate_wecom_population
from scrm.config import Settings, SyncSettings, WeComAccount
from scrm.errors import ConfigError, ConnectorError, RateLimited, RecipientRefused, TokenRejected

DATA = Path(__file__).resolve().parents[1] / "data" / "wecom"


@pytest.fixture(scope="module")
def pop() -> WeComPopulation:
    return generate_wecom_population(1200, groups=60, memberships=1500, staff=10, seed=11)


@pytest.fixture
def sim(pop: WeComPopulation) -> Iterator[WeComSimulator]:
    with WeComSimulator(pop) as server:
        yield server


def account(sim: WeComSimulator, **extra: str) -> WeComAccount:
    return WeComAccount(
        platform="wecom", corpid=sim.corpid, secret=sim.secret, api_base=sim.base_url, **extra
    )


def connector(sim: WeComSimulator, **sync: float) -> WeComConnector:
    return WeComConnector(
        account(sim, events_url=sim.events_url), SyncSettings(**{"backoff_seconds": 0.0, **sync})
    )


def paths(sim: WeComSimulator, since: int = 0) -> list[str]:
    return [r["path"].removeprefix("/cgi-bin/") for r in sim.requests(since)]


def test_it_is_a_group_connector_of_platform_wecom(sim: WeComSimulator) -> None:
    with connector(sim) as c:
        assert isinstance(c, GroupConnector) and c.platform == "wecom"
        assert c.tags() == [] and list(c.interactions()) == []
        with pytest.raises(ConnectorError, match="not supported"):
            c.send_text("wm1", "hi")


def test_staff_and_contacts_with_the_staff_who_added_them(sim: WeComSimulator, pop: WeComPopulation) -> None:
    with connector(sim) as c:
        assert c.staff() == pop.staff
        permitted = c.contact_staff()
        assert permitted == [u for u, on in zip(pop.staff, pop.staff_enabled, strict=True) if on]
        pages = list(c.contacts())
    assert pages[-1].next_cursor is None and all(p.next_cursor for p in pages[:-1])
    pairs = [(f.staff, x.id) for p in pages for x in p.contacts for f in x.follows]
    now = sim.clock.timestamp()
    expected = [
        (pop.staff[int(pop.f_staff[r])], pop.contacts[int(pop.f_contact[r])])
        for r in range(len(pop.f_staff))
        if pop.staff_enabled[pop.f_staff[r]] and pop.f_time[r] <= now and not 0 < pop.f_removed[r] <= now
    ]
    assert pairs == expected
    one = next(x for p in pages for x in p.contacts if x.follows[0].state)
    k = pop.contacts.index(one.id)
    assert one.unionid == pop.contact_unionids[k] and one.name == pop.contact_names[k]
    assert one.follows[0].add_way == 1  # a channel (state) only comes with a scanned contact-way code


def test_contacts_resume_from_a_page_cursor(sim: WeComSimulator) -> None:
    with connector(sim) as c:
        pages = list(c.contacts())
        resumed = list(c.contacts(pages[2].next_cursor))
    assert resumed == pages[3:]


def test_followers_and_profiles_follow_the_connector_interface(
    sim: WeComSimulator, pop: WeComPopulation
) -> None:
    with connector(sim, concurrency=3) as c:
        pages = list(c.followers())
        ids = [i for p in pages for i in p.ids]
        profiles = [p for batch in c.profiles([*ids[:30], "wmNotAContact"]) for p in batch]
    assert [p.openid for p in profiles] == [*ids[:30], "wmNotAContact"]
    assert all(p.subscribed for p in profiles[:30]) and not profiles[-1].subscribed
    k = pop.contacts.index(profiles[0].openid)
    rows = [
        r for r in range(len(pop.f_contact)) if pop.f_contact[r] == k and pop.staff_enabled[pop.f_staff[r]]
    ]
    first = min(int(pop.f_time[r]) for r in rows)
    assert profiles[0].subscribe_time is not None and int(profiles[0].subscribe_time.timestamp()) == first


def test_groups_and_their_members(sim: WeComSimulator, pop: WeComPopulation) -> None:
    with connector(sim, concurrency=4) as c:
        ids = [i for page in c.groups() for i in page.ids]
        infos = [g for batch in c.group_details([*ids, "wrGone"]) for g in batch]
    now = sim.clock.timestamp()
    assert ids == [g for g, t in zip(pop.groups, pop.g_time, strict=True) if t <= now]
    assert [g.id for g in infos] == ids  # in order; a group that is gone is left out
    g = pop.groups.index(infos[0].id)
    assert infos[0].owner == pop.staff[int(pop.g_owner[g])] and infos[0].name == pop.group_names[g]
    invited = [m for info in infos for m in info.members if m.invitor]
    assert any(m.invitor in pop.staff for m in invited) and any(m.invitor.startswith("wm") for m in invited)
    assert {m.join_scene for info in infos for m in info.members} <= {1, 2, 3}


def test_wecoms_own_example_parses() -> None:
    data = json.loads((DATA / "externalcontact_groupchat_get.json").read_text(encoding="utf-8"))
    group = parse_group(data["group_chat"])
    assert (group.id, group.owner, len(group.members)) == ("wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA", "ZhuShengBen", 3)
    assert [m.is_customer for m in group.members] == [False, False, True]
    assert group.members[2].unionid == "ozynqsulJFCZ2z1aYeS8h-nuasdAAA"


def test_one_token_for_many_calls_and_a_new_one_when_it_expires(sim: WeComSimulator) -> None:
    with connector(sim) as c:
        c.contact_staff()
        c.contact_staff()
        sim.clock.advance(7300)  # expired: 42001, fetch a new one, retry
        c.contact_staff()
    assert paths(sim) == [
        "gettoken",
        "externalcontact/get_follow_user_list",
        "externalcontact/get_follow_user_list",
        "externalcontact/get_follow_user_list",
        "gettoken",
        "externalcontact/get_follow_user_list",
    ]
    assert [r["errcode"] for r in sim.requests()][3] == 42001


def test_token_refresh_is_bounded(sim: WeComSimulator) -> None:
    sim.reject_tokens()
    with (
        connector(sim, max_token_refreshes=2) as c,
        pytest.raises(TokenRejected, match="refused 3 times") as info,
    ):
        c.staff()
    assert info.value.errcode == 40014
    assert paths(sim).count("gettoken") == 3 and paths(sim).count("user/simplelist") == 3
    assert sim.secret not in str(info.value)


def test_wrong_credentials_say_which(sim: WeComSimulator) -> None:
    wrong = WeComAccount(platform="wecom", corpid=sim.corpid, secret="nope", api_base=sim.base_url)
    with WeComConnector(wrong) as c, pytest.raises(TokenRejected, match="secret is not valid") as info:
        c.staff()
    assert info.value.errcode == 40001 and "nope" not in str(info.value)


def test_rate_limits_back_off_and_give_up(pop: WeComPopulation) -> None:
    with (
        WeComSimulator(pop, per_minute={"externalcontact/groupchat/list": 1}) as sim,
        connector(sim, rate_limit_retries=2) as c,
    ):
        list(c.groups())
        waits: list[float] = []
        c.api.sleep = lambda s: (waits.append(s), sim.clock.advance(60))[0]  # type: ignore[func-returns-value]
        assert [i for p in c.groups() for i in p.ids]  # 45009, waited a simulated minute, retried
        assert len(waits) == 1
        c.api.sleep = waits.append  # time stands still: the limit stays
        with pytest.raises(RateLimited, match="after 2 retries") as info:
            list(c.groups())
        assert info.value.errcode == 45009


def test_no_privilege_and_not_a_contact(sim: WeComSimulator, pop: WeComPopulation) -> None:
    restricted = pop.staff[next(i for i, on in enumerate(pop.staff_enabled) if not on)]
    with connector(sim) as c:
        with pytest.raises(ConnectorError, match="no privilege") as info:
            c.api.call("externalcontact/list", lambda client: client.external_contact.list(restricted))
        assert info.value.errcode == 60011
        with pytest.raises(RecipientRefused, match="not an external contact"):
            c.api.call("externalcontact/get", lambda client: client.external_contact.get("wmNobody"))


def test_contact_events(sim: WeComSimulator, pop: WeComPopulation) -> None:
    with connector(sim) as c:
        pages = list(c.contact_events(limit=7))
        assert len(pages) > 1 and not pages[-1].has_more
        events = [e for p in pages for e in p.items]
        later = list(c.contact_events(pages[0].next_cursor, limit=1000))
    assert [e for p in later for e in p.items] == events[7:]
    assert {e.kind for e in events} == {"staff_deleted_customer", "customer_deleted_staff"}
    now = sim.clock.timestamp()
    assert len(events) == int(((pop.f_removed > 0) & (pop.f_removed <= now)).sum())
    with WeComConnector(account(sim)) as c:
        assert list(c.contact_events()) == []  # no events_url: nothing


def test_from_settings_picks_the_wecom_account(sim: WeComSimulator) -> None:
    settings = Settings.model_validate(
        {
            "accounts": {
                "oa": {"platform": "wechat", "appid": "wx1", "secret": "s"},
                "corp": {
                    "platform": "wecom",
                    "corpid": sim.corpid,
                    "secret": sim.secret,
                    "api_base": sim.base_url,
                },
            }
        }
    )
    name, c = WeComConnector.from_settings(settings)
    assert name == "corp" and c.account.corpid == sim.corpid
    c.close()
    with pytest.raises(ConfigError, match="no WeCom account 'oa'"):
        WeComConnector.from_settings(settings, "oa")
