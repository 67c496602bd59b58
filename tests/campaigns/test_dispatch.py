"""Each action through the simulator, each skip reason, windows, quotas, caps, errors, dry runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from scrm.errors import TemplateError
from scrm.inbound import InboundRecord, write_inbound
from scrm.models import Account, CampaignRun, Customer, Delivery, Follow, Identity
from tests.campaigns.conftest import World

delivery_t = Delivery.__table__  # type: ignore[attr-defined]
run_t = CampaignRun.__table__  # type: ignore[attr-defined]

LEADERS = """
[campaign]
action = "{action}"
template = "hello.txt.j2"
{extra}
[audience]
{audience}
"""


def campaign_text(action: str = "text", extra: str = "", audience: str = 'role = "leader"') -> str:
    return LEADERS.format(action=action, extra=extra, audience=audience)


def deliveries(world: World) -> list[dict[str, object]]:
    with world.store.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(delivery_t).order_by(delivery_t.c.id))]


def act(world: World, openids: list[str], kind: str, at: datetime) -> None:
    """The followers act (a message, a click): the simulator opens their window, the bot stores it."""
    records = []
    for n, openid in enumerate(openids):
        world.sim.act(openid, kind, content="hi")
        records.append(
            (
                InboundRecord(
                    "wechat",
                    world.sim.appid,
                    openid,
                    kind,
                    at,
                    msg_id=9_000_000 + n if kind == "text" else 0,
                    content="hi",
                ),
                "",
                "",
                "none",
            )
        )
    with world.store.connect() as conn:
        write_inbound(conn, records)


@pytest.fixture
def hello(world: World) -> World:
    world.template(
        "hello.txt.j2", "Hello {{ openid[-4:] }}, social value {{ scores.social_value | round(1) }}"
    )
    return world


def test_customer_service_messages_only_inside_the_window(hello: World) -> None:
    w = hello
    leaders = {cid: w.openids()[cid] for cid in _leaders(w)}
    inside = sorted(leaders.values())[:5]
    act(w, inside, "text", w.now)
    w.now += timedelta(hours=1)
    w.sim.clock.advance(3600)
    result = w.run(w.campaign("cs", campaign_text()))
    assert result.counts.status == {"sent": 5, "skipped": len(leaders) - 5}
    assert result.counts.reasons == {"outside_window": len(leaders) - 5}
    assert sorted(w.sent_to("custom")) == inside
    texts = [m["payload"]["content"] for m in w.sim.sent]
    assert all(t.startswith("Hello ") for t in texts)
    # 49 hours after their message the window has closed: a template message when the campaign has one
    w.now += timedelta(hours=48)
    w.sim.clock.advance(48 * 3600)
    later = w.run(
        w.campaign("cs2", campaign_text(extra='template_id = "TPL_EVENT"', audience=_ids(inside, w)))
    )
    assert later.counts.channels == {"template": 5}
    assert sorted(w.sent_to("template")) == inside


def test_the_window_counts_messages_sent(hello: World) -> None:
    w = hello
    one = sorted(w.openids().values())[:1]
    act(w, one, "click", w.now)  # a click opens 1 minute and 3 messages
    sent = []
    for k in range(4):
        result = w.run(w.campaign(f"c{k}", campaign_text(audience=_ids(one, w))), key=f"c{k}")
        sent.append(result.counts.status.get("sent", 0))
    assert sent == [1, 1, 0, 0]  # the weekly cap (2) stops the third before the window's 3 would
    w.settings = w.settings.model_copy(
        update={"campaigns": w.settings.campaigns.model_copy(update={"max_messages_per_week": 10})}
    )
    result = w.run(w.campaign("c9", campaign_text(audience=_ids(one, w))))
    assert result.counts.status == {"sent": 1}
    result = w.run(w.campaign("c10", campaign_text(audience=_ids(one, w))))
    assert result.counts.reasons == {"outside_window": 1}  # three sent since the click
    assert len(w.sent_to("custom")) == 3


def test_template_mass_and_tag_actions(hello: World) -> None:
    w = hello
    leaders = _leaders(w)
    openids = w.openids()
    result = w.run(
        w.campaign(
            "tpl",
            campaign_text(
                "template", 'template_id = "TPL_EVENT"\n[campaign.fields]\nfirst = "Hi {{ community }}"'
            ),
        )
    )
    assert result.counts.status == {"sent": len(leaders)}
    assert sorted(w.sent_to("template")) == sorted(openids[c] for c in leaders)
    payload = next(m for m in w.sim.sent if m["kind"] == "template")["payload"]
    assert payload["template_id"] == "TPL_EVENT" and payload["data"]["first"]["value"].startswith("Hi ")

    w.template("news.txt.j2", "News for everyone from {{ campaign }}")  # one text for all: no names
    mass_file = campaign_text("mass", audience='stage = "prospect"\nsubscribed = true')
    mass = w.campaign("mass", mass_file.replace("hello.txt.j2", "news.txt.j2"))
    first = w.run(mass, key="mass-1")
    n = first.counts.status["sent"]
    assert n > 100 and len(w.sim.state.mass_jobs) == 1
    again = w.run(mass, key="mass-1")  # the same run: nothing left to send
    assert again.sent_now == 0 and len(w.sim.state.mass_jobs) == 1
    assert Counter(w.sent_to("mass")).most_common(1)[0][1] == 1

    tagging = w.campaign("tag", campaign_text("tag", 'tag = "vip_leaders"'))
    assert w.run(tagging).counts.status == {"sent": len(leaders)}
    tag_id = next(t["id"] for t in w.sim.state.tag_list()["tags"] if t["name"] == "vip_leaders")
    members = {w.sim.population.openids[i] for i in w.sim.state.tag_members[tag_id]}
    assert members == {openids[c] for c in leaders}
    w.template("news.txt.j2", "News for the leaders")
    more = w.settings.campaigns.model_copy(update={"max_messages_per_week": 10})
    w.settings = w.settings.model_copy(update={"campaigns": more})
    to_tag = campaign_text("mass", 'tag = "vip_leaders"').replace("hello.txt.j2", "news.txt.j2")
    jobs = len(w.sim.state.mass_jobs)
    assert w.run(w.campaign("to_tag", to_tag)).counts.status == {"sent": len(leaders)}
    assert len(w.sim.state.mass_jobs) == jobs + 1  # one sendall to the tag, with its clientmsgid
    last = [
        m["openid"] for m in w.sim.sent if m["kind"] == "mass" and m["payload"]["content"].endswith("leaders")
    ]
    assert sorted(last) == sorted(members)
    untag = w.campaign("untag", campaign_text("untag", 'tag = "vip_leaders"'))
    assert w.run(untag).counts.status == {"sent": len(leaders)}
    assert not w.sim.state.tag_members[tag_id]


def test_mass_sends_respect_the_monthly_cap(hello: World) -> None:
    w = hello
    w.template("news.txt.j2", "News")
    audience = 'role = "leader"'
    counts = []
    for k in range(5):
        w.settings = w.settings.model_copy(
            update={"campaigns": w.settings.campaigns.model_copy(update={"max_messages_per_week": 10})}
        )
        text = campaign_text("mass", audience=audience).replace("hello.txt.j2", "news.txt.j2")
        result = w.run(w.campaign(f"m{k}", text))
        counts.append(result.counts.reasons.get("mass_monthly_cap", 0))
    assert counts[:4] == [0, 0, 0, 0] and counts[4] == len(_leaders(w))
    assert max(Counter(w.sent_to("mass")).values()) == 4


def test_skip_reasons(hello: World) -> None:
    w = hello
    leaders = _leaders(w)
    c, f, i = Customer.__table__, Follow.__table__, Identity.__table__  # type: ignore[attr-defined]
    with w.store.connect() as conn:
        conn.execute(sa.update(c).where(c.c.id == leaders[0]).values(opted_out_at=w.now))
        conn.execute(sa.update(f).where(f.c.customer_id == leaders[1]).values(unsubscribed_at=w.now))
        conn.execute(sa.delete(i).where(i.c.customer_id == leaders[2], i.c.kind == "openid"))
    w.settings = w.settings.model_copy(
        update={"campaigns": w.settings.campaigns.model_copy(update={"template_quota_per_day": 10})}
    )
    result = w.run(w.campaign("s", campaign_text(extra='template_id = "TPL_EVENT"')))
    reasons = result.counts.reasons
    assert (
        reasons.pop("opted_out") == 1 and reasons.pop("unsubscribed") == 1 and reasons.pop("no_openid") == 1
    )
    assert reasons == {"template_quota": len(leaders) - 3 - 10}
    assert result.counts.status["sent"] == 10
    # the daily template quota counts every campaign's: nothing left today
    again = w.run(w.campaign("s2", campaign_text(extra='template_id = "TPL_EVENT"')))
    assert again.counts.reasons.get("template_quota") == len(leaders) - 3
    w.settings = w.settings.model_copy(
        update={
            "campaigns": w.settings.campaigns.model_copy(
                update={"max_messages_per_week": 1, "template_quota_per_day": 1000}
            )
        }
    )
    third = w.run(w.campaign("s3", campaign_text(extra='template_id = "TPL_EVENT"')))
    # the weekly cap counts the messages of every campaign: the ten who got one get no other
    assert third.counts.reasons["frequency_cap"] == 10
    assert third.counts.status["sent"] == len(leaders) - 3 - 10


def test_permanent_refusals_are_recorded_and_not_retried(hello: World) -> None:
    w = hello
    pop = w.sim.population
    gone = next(
        o
        for k, o in enumerate(pop.openids)
        if not w.sim.state.is_subscribed(k) and o in set(w.openids().values())
    )
    cid = {o: c for c, o in w.openids().items()}[gone]
    f, i = Follow.__table__, Identity.__table__  # type: ignore[attr-defined]
    target = _leaders(w)[0]
    with w.store.connect() as conn:  # the store still believes they follow (no sync since they left)
        account = conn.execute(sa.select(Account.__table__.c.id)).scalar_one()  # type: ignore[attr-defined]
        conn.execute(sa.delete(f).where(f.c.customer_id == cid))
        conn.execute(
            sa.insert(f).values(account_id=account, customer_id=cid, subscribed_at=w.now - timedelta(days=9))
        )
        conn.execute(
            sa.update(i)
            .where(i.c.customer_id == target, i.c.kind == "openid")
            .values(value="o_not_a_real_openid")
        )
    audience = f"customer = {{ in = [{cid}, {target}] }}"
    result = w.run(w.campaign("e", campaign_text("template", 'template_id = "TPL_EVENT"', audience)))
    by_customer = {d["customer_id"]: d for d in deliveries(w)}
    assert by_customer[cid]["errcode"] == 43004 and by_customer[cid]["reason"] == "unsubscribed"
    assert by_customer[target]["errcode"] == 40003 and by_customer[target]["reason"] == "invalid_openid"
    assert result.counts.status == {"failed": 2}
    template_calls = [r for r in w.sim.requests() if r["path"].endswith("message/template/send")]
    assert len(template_calls) == 2  # no retry
    with w.store.connect() as conn:
        assert conn.execute(sa.select(f.c.unsubscribed_at).where(f.c.customer_id == cid)).scalar() is not None
    second = w.run(w.campaign("e2", campaign_text("template", 'template_id = "TPL_EVENT"', audience)))
    assert second.counts.reasons == {"unsubscribed": 1, "invalid_openid": 1}


def test_rate_limits_are_retried_then_failed(make_world: Callable[..., World], wechat_sim: object) -> None:
    w = make_world(send_retries=2)
    w.template("hello.txt.j2", "Hello")
    w.sim.state.quotas["message/template/send"] = 3
    result = w.run(w.campaign("r", campaign_text("template", 'template_id = "TPL_EVENT"')))
    assert result.counts.status["sent"] == 3
    assert result.counts.reasons == {"rate_limited": len(_leaders(w)) - 3}
    refused = [
        r for r in w.sim.requests() if r["path"].endswith("template/send") and r.get("errcode") == 45009
    ]
    # per failed delivery: the connector's own retry (1) x (our retries (2) + 1)
    assert len(refused) == (len(_leaders(w)) - 3) * 2 * 3


def test_dry_run_sends_and_stores_nothing(hello: World) -> None:
    w = hello
    before = len(w.sim.requests())
    result = w.run(
        w.campaign("d", campaign_text(extra='template_id = "TPL_EVENT"\ncontrol_percent = 20\nseed = 3')),
        dry_run=True,
    )
    assert result.counts.status["would_send"] + result.counts.status["control"] == len(_leaders(w))
    assert (
        result.counts.status["control"] > 0
        and result.samples
        and result.samples[0]["text"].startswith("Hello ")
    )
    assert [r for r in w.sim.requests()[before:] if "message" in r["path"]] == []
    assert deliveries(w) == []


def test_a_template_broken_for_everyone_stops_before_sending(hello: World) -> None:
    w = hello
    w.template("broken.txt.j2", "Hello {{ nobody_knows_me }}")
    c = w.campaign(
        "b", campaign_text(extra='template_id = "TPL_EVENT"').replace("hello.txt.j2", "broken.txt.j2")
    )
    with pytest.raises(TemplateError, match="failed for all"):
        w.run(c)
    assert w.sim.sent == [] and deliveries(w) == []
    with w.store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(run_t)).scalar() == 0


def test_a_template_broken_for_one_customer_skips_that_customer(hello: World) -> None:
    w = hello
    leaders = _leaders(w)
    w.template("odd.txt.j2", "Hello {{ 100 // (customer_id - " + str(leaders[0]) + ") }}")
    c = w.campaign(
        "o", campaign_text("template", 'template_id = "TPL_EVENT"').replace("hello.txt.j2", "odd.txt.j2")
    )
    result = w.run(c)
    assert result.counts.status == {"sent": len(leaders) - 1, "skipped": 1}
    skipped = [d for d in deliveries(w) if d["status"] == "skipped"]
    assert skipped[0]["customer_id"] == leaders[0] and "ZeroDivisionError" in skipped[0]["error"]


def _leaders(w: World) -> list[int]:
    from campaigns.segments import latest_run, parse_segment

    seg = parse_segment({"where": {"role": "leader", "subscribed": True}})
    with w.store.connect() as conn:
        return sorted(conn.execute(seg.query(latest_run(w.store), w.now)).scalars())


def _ids(openids: list[str], w: World) -> str:
    by_openid = {o: c for c, o in w.openids().items()}
    return f"customer = {{ in = {sorted(by_openid[o] for o in openids)} }}"
