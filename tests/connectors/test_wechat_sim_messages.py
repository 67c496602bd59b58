"""Sending through the simulator with wechatpy: customer-service windows, templates, mass sends, quotas."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from wechatpy.exceptions import APILimitedException, WeChatClientException

from connectors.wechat_sim import Action, Population, SimulatorServer
from tests.connectors.wechat_helpers import client_for, errcode_of

HOUR = 3600


def at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def by_follower(pop: Population) -> dict[str, list[Action]]:
    out: dict[str, list[Action]] = {}
    for a in pop.actions:
        out.setdefault(a.openid, []).append(a)
    return out


def quiet_text(pop: Population) -> Action:
    """A text message whose sender does nothing else for 48 h and stays subscribed."""
    for openid, acts in by_follower(pop).items():
        for k, a in enumerate(acts):
            later = acts[k + 1 :]
            if a.kind == "text" and (not later or later[0].time > a.time + 49 * HOUR):
                earlier = [b for b in acts[:k] if b.kind == "text" and b.time > a.time - 49 * HOUR]
                if not earlier and pop.subscribed_mask(a.time + 49 * HOUR)[pop.index[openid]]:
                    return a
    raise AssertionError("no quiet text message in the population")


def lone_click(pop: Population) -> Action:
    """A click with no message from its follower in the 48 h before, no other action 2 min around it."""
    for acts in by_follower(pop).values():
        for k, a in enumerate(acts):
            later, earlier = acts[k + 1 :], acts[:k]
            alone = (not later or later[0].time > a.time + 120) and not any(
                b.time > a.time - 61 or (b.kind == "text" and b.time > a.time - 49 * HOUR) for b in earlier
            )
            if a.kind == "click" and alone:
                return a
    raise AssertionError("no lone click in the population")


def test_text_window_allows_five_messages_within_48_hours(wechat_population: Population) -> None:
    msg = quiet_text(wechat_population)
    with SimulatorServer(wechat_population, clock_at=at(msg.time + 10)) as sim:
        client = client_for(sim)
        for n in range(5):
            client.message.send_text(msg.openid, f"reply {n}")
        assert errcode_of(client.message.send_text, msg.openid, "") == 44004
        assert errcode_of(client.message.send_text, msg.openid, "one too many") == 45015
        assert [s["payload"]["content"] for s in sim.sent] == [f"reply {n}" for n in range(5)]
    with SimulatorServer(wechat_population, clock_at=at(msg.time + 48 * HOUR)) as sim:
        client = client_for(sim)
        client.message.send_text(msg.openid, "just in time")
        sim.clock.advance(1)
        assert errcode_of(client.message.send_text, msg.openid, "too late") == 45015


def test_click_window_allows_three_messages_within_one_minute(wechat_population: Population) -> None:
    click = lone_click(wechat_population)
    with SimulatorServer(wechat_population, clock_at=at(click.time + 1)) as sim:
        client = client_for(sim)
        articles = [{"title": "新品", "description": "秋季", "url": "https://example.com/a", "image": ""}]
        client.message.send_articles(click.openid, articles)
        client.message.send_text(click.openid, "two")
        client.message.send_text(click.openid, "three")
        assert errcode_of(client.message.send_text, click.openid, "four") == 45015
    with SimulatorServer(wechat_population, clock_at=at(click.time + 61)) as sim:
        assert errcode_of(client_for(sim).message.send_text, click.openid, "late") == 45015


def test_custom_send_to_non_follower_and_unknown(wechat_sim: SimulatorServer) -> None:
    pop = wechat_sim.population
    gone = next(i for i in range(len(pop)) if not wechat_sim.state.is_subscribed(i))
    client = client_for(wechat_sim)
    assert errcode_of(client.message.send_text, pop.openids[gone], "hi") == 43004
    assert errcode_of(client.message.send_text, "o" + "x" * 27, "hi") == 40003
    assert wechat_sim.sent == []


def test_custom_send_daily_quota(wechat_population: Population) -> None:
    msg = quiet_text(wechat_population)
    quotas: dict[str, int | None] = {"message/custom/send": 2}
    with SimulatorServer(wechat_population, clock_at=at(msg.time + 10), quotas=quotas) as sim:
        client = client_for(sim)
        client.message.send_text(msg.openid, "1")
        client.message.send_text(msg.openid, "2")
        with pytest.raises(APILimitedException):
            client.message.send_text(msg.openid, "3")
        assert len(sim.sent) == 2


def test_template_messages(wechat_population: Population) -> None:
    with SimulatorServer(wechat_population, quotas={"message/template/send": 4}) as sim:
        client = client_for(sim)
        openids = list(client.user.iter_followers())
        data = {"first": {"value": "您好"}, "keyword1": {"value": "会员日"}, "keyword2": {"value": "周六"}}
        ids = [client.message.send_template(o, "TPL_EVENT", data)["msgid"] for o in openids[:2]]
        assert len(set(ids)) == 2
        assert errcode_of(client.message.send_template, openids[2], "TPL_NOPE", data) == 40037
        gone = next(o for o in sim.population.openids if o not in set(openids))
        assert errcode_of(client.message.send_template, gone, "TPL_ORDER", data) == 43004
        with pytest.raises(APILimitedException):  # calls answered with an error count too
            client.message.send_template(openids[3], "TPL_ORDER", data)
        assert [(s["openid"], s["msgid"]) for s in sim.sent] == list(zip(openids[:2], ids, strict=True))


def test_mass_send_caps_each_follower_at_four_a_month(wechat_sim: SimulatorServer) -> None:
    client = client_for(wechat_sim)
    openids = list(client.user.iter_followers())
    first, second = openids[:3], openids[2:5]
    for n in range(4):
        client.message.send_mass_text(first, f"news {n}")
    job = client.message.send_mass_text(second, "news 4")
    jobs = wechat_sim.messaging.mass_jobs
    assert jobs[job["msg_id"]]["sent_count"] == 2  # openids[2] already had 4 this month
    assert jobs[job["msg_id"]]["over_monthly_limit"] == [openids[2]]
    received = [s["openid"] for s in wechat_sim.sent if s["kind"] == "mass"]
    assert received.count(openids[2]) == 4 and received.count(openids[3]) == 1
    assert errcode_of(client.message.send_mass_text, openids[:1], "one") == 40130


def test_mass_clientmsgid_is_idempotent_for_24_hours(wechat_sim: SimulatorServer) -> None:
    client = client_for(wechat_sim)
    openids = list(client.user.iter_followers())[:2]
    job = client.message.send_mass_text(openids, "hello", client_msg_id="campaign-7")
    with pytest.raises(WeChatClientException) as again:
        client.message.send_mass_text(openids, "hello", client_msg_id="campaign-7")
    assert again.value.errcode == 45065
    assert again.value.response.json()["msg_id"] == job["msg_id"]
    assert len([s for s in wechat_sim.sent if s["kind"] == "mass"]) == 2
    wechat_sim.clock.advance(24 * HOUR)
    client = client_for(wechat_sim)
    assert (
        client.message.send_mass_text(openids, "hello", client_msg_id="campaign-7")["msg_id"] != job["msg_id"]
    )


def test_mass_sendall_by_tag_and_to_all(wechat_sim: SimulatorServer) -> None:
    client = client_for(wechat_sim)
    followers = list(client.user.iter_followers())
    tags = {t["name"]: t for t in client.tag.get()}
    vip = tags["VIP"]
    job = client.message.send_mass_text(vip["id"], "VIP only")
    delivered = {s["openid"] for s in wechat_sim.sent if s["msgid"] == job["msg_id"]}
    assert delivered == set(client.tag.iter_tag_users(vip["id"])) and len(delivered) == vip["count"]
    job = client.message.send_mass_text(None, "everyone", is_to_all=True)
    assert {s["openid"] for s in wechat_sim.sent if s["msgid"] == job["msg_id"]} == set(followers)


def test_mass_send_per_minute_and_daily_limits(wechat_population: Population) -> None:
    limits: dict[str, int | None] = {"message/mass/send": 3}
    with SimulatorServer(wechat_population, per_minute=limits, quotas={"message/mass/send": 5}) as sim:
        client = client_for(sim)
        openids = list(client.user.iter_followers())
        for n in range(3):
            client.message.send_mass_text(openids[2 * n : 2 * n + 2], "x")
        with pytest.raises(APILimitedException):
            client.message.send_mass_text(openids[:2], "x")
        sim.clock.advance(60)
        client.message.send_mass_text(openids[6:8], "y")
        client.message.send_mass_text(openids[8:10], "y")
        sim.clock.advance(60)
        with pytest.raises(APILimitedException):  # 5 a day
            client.message.send_mass_text(openids[10:12], "z")


def test_mass_preview(wechat_sim: SimulatorServer) -> None:
    client = client_for(wechat_sim)
    openid = next(iter(client.user.iter_followers()))
    answer = client.message.send_mass_text(openid, "preview", preview=True)
    assert answer["errmsg"] == "preview success"
    assert [s["kind"] for s in wechat_sim.sent] == ["preview"]


def test_a_follower_acting_now_opens_a_window(wechat_sim: SimulatorServer) -> None:
    client = client_for(wechat_sim)
    openid = next(iter(client.user.iter_followers()))
    wechat_sim.clock.advance(49 * HOUR)  # past any generated window
    client = client_for(wechat_sim)
    assert errcode_of(client.message.send_text, openid, "hello?") == 45015
    action = wechat_sim.act(openid, "text", content="在吗")
    assert (action.time, action.kind, action.content) == (wechat_sim.clock.timestamp(), "text", "在吗")
    client.message.send_text(openid, "在的")
    assert [s["payload"]["content"] for s in wechat_sim.sent] == ["在的"]
