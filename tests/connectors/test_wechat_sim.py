"""The WeChat simulator driven by wechatpy's own WeChatClient over real HTTP: tokens, followers, tags, log."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path

import httpx
import pytest
from wechatpy.exceptions import APILimitedException

from connectors.orders import OrderReader, PurchaseRecord
from connectors.wechat_sim import Population, SimulatorServer, generate_population
from tests.connectors.wechat_helpers import client_for, errcode_of, fresh_token, raw_call

# ---- tokens --------------------------------------------------------------------------------------------


def test_bad_credentials_answer_wechat_codes(wechat_sim: SimulatorServer) -> None:
    assert errcode_of(client_for(wechat_sim, appid="wx0000000000000000").user.get_followers) == 40013
    assert errcode_of(client_for(wechat_sim, secret="0" * 32).user.get_followers) == 40125
    params = {"grant_type": "password", "appid": wechat_sim.appid, "secret": wechat_sim.secret}
    assert raw_call(wechat_sim, "GET", "token", params=params)["errcode"] == 40002


def test_missing_and_unknown_tokens(wechat_sim: SimulatorServer) -> None:
    assert raw_call(wechat_sim, "GET", "user/get")["errcode"] == 41001
    assert errcode_of(client_for(wechat_sim, access_token="not-a-token").user.get_followers) == 40001


def test_token_expires_after_7200_seconds(wechat_sim: SimulatorServer) -> None:
    client = client_for(wechat_sim)
    client.user.get_followers()
    wechat_sim.clock.advance(7199)
    client.user.get_followers()
    wechat_sim.clock.advance(1)
    assert errcode_of(client.user.get_followers) == 42001


def test_superseded_token_stays_valid_five_minutes(wechat_sim: SimulatorServer) -> None:
    old, new = client_for(wechat_sim), client_for(wechat_sim)
    old.user.get_followers()
    new.user.get_followers()  # fetches a second token, superseding the first
    assert old.access_token != new.access_token
    wechat_sim.clock.advance(299)
    old.user.get_followers()
    wechat_sim.clock.advance(1)
    assert errcode_of(old.user.get_followers) == 40001
    new.user.get_followers()


def test_reject_tokens_makes_every_call_fail_with_40001(wechat_sim: SimulatorServer) -> None:
    client = client_for(wechat_sim)
    client.user.get_followers()
    wechat_sim.reject_tokens(True)
    assert errcode_of(client.user.get_followers) == 40001
    wechat_sim.reject_tokens(False)
    client.user.get_followers()


def test_token_daily_quota(wechat_population: Population) -> None:
    with SimulatorServer(wechat_population, quotas={"token": 2}) as sim:
        fresh_token(sim)
        fresh_token(sim)
        params = {"grant_type": "client_credential", "appid": sim.appid, "secret": sim.secret}
        assert raw_call(sim, "GET", "token", params=params)["errcode"] == 45009


# ---- followers and profiles ----------------------------------------------------------------------------


def test_followers_are_the_subscribed_at_the_clock(wechat_sim: SimulatorServer) -> None:
    pop = wechat_sim.population
    openids = list(client_for(wechat_sim).user.iter_followers())
    mask = pop.subscribed_mask(wechat_sim.clock.timestamp())
    assert openids == [pop.openids[i] for i in range(len(pop)) if mask[i]]
    assert 0 < len(openids) < len(pop)  # some unsubscribed for good


def test_clock_drives_subscribes_and_unsubscribes(wechat_population: Population) -> None:
    pop = wechat_population
    leaver = next(i for i in range(len(pop)) if pop.unsubscribe[i] and not pop.resubscribe[i])
    gone_at = int(pop.unsubscribe[leaver])
    with SimulatorServer(pop, clock_at="start") as sim:
        client = client_for(sim)
        at_start = set(client.user.iter_followers())
        sim.clock.set(sim.clock.now().fromtimestamp(gone_at - 1, UTC))
        before = set(client_for(sim).user.iter_followers())
        assert pop.openids[leaver] in before and len(before) > len(at_start)
        sim.clock.advance(1)
        client = client_for(sim)  # the previous token expired on the way
        after = set(client.user.iter_followers())
        assert pop.openids[leaver] not in after
        assert client.user.get(pop.openids[leaver])["subscribe"] == 0


def test_paging_10000_a_page_ends_as_wechat_does() -> None:
    pop = generate_population(23_000, seed=11, weeks=2)
    with SimulatorServer(pop) as sim:
        token = fresh_token(sim)
        first = raw_call(sim, "GET", "user/get", params={"access_token": token})
        total = first["total"]
        assert total > 20_000 and first["count"] == 10_000
        assert first["next_openid"] == first["data"]["openid"][-1]
        pages = [first]
        while pages[-1].get("data"):
            params = {"access_token": token, "next_openid": pages[-1]["next_openid"]}
            pages.append(raw_call(sim, "GET", "user/get", params=params))
        assert [p["count"] for p in pages] == [10_000, 10_000, total - 20_000, 0]
        assert pages[2]["next_openid"] == pages[2]["data"]["openid"][-1]  # last page still has one
        assert pages[3] == {"total": total, "count": 0, "next_openid": ""}
        assert len(list(client_for(sim).user.iter_followers())) == total


def test_profiles_only_fields_kept_since_2021(wechat_sim: SimulatorServer) -> None:
    pop = wechat_sim.population
    client = client_for(wechat_sim)
    openids = list(client.user.iter_followers())
    profiles = client.user.get_batch(openids[:100])
    assert [p["openid"] for p in profiles] == openids[:100]
    allowed = {
        "subscribe", "openid", "language", "subscribe_time", "unionid", "remark", "groupid",
        "tagid_list", "subscribe_scene", "qr_scene", "qr_scene_str",
    }  # fmt: skip
    for p in profiles:
        assert set(p) <= allowed and p["subscribe"] == 1
        i = pop.index[p["openid"]]
        assert p.get("unionid") == pop.unionids[i]
        assert p["subscribe_scene"] == pop.scene[i] and p["qr_scene_str"] == pop.qr_scene_str[i]
    referred = [p for p in client.user.get_batch(openids[100:200]) if p["qr_scene_str"].startswith("ref_")]
    assert referred and all(p["qr_scene_str"][4:] in pop.index for p in referred)
    assert client.user.get(openids[0]) == profiles[0]


def test_unsubscribed_profile_has_only_openid_and_unionid(wechat_sim: SimulatorServer) -> None:
    pop = wechat_sim.population
    now = wechat_sim.clock.timestamp()
    gone = [i for i in range(len(pop)) if not pop.subscribed_mask(now)[i]]
    profiles = client_for(wechat_sim).user.get_batch([pop.openids[i] for i in gone])
    for i, p in zip(gone, profiles, strict=True):
        expected = {"subscribe": 0, "openid": pop.openids[i]}
        if pop.unionids[i]:
            expected["unionid"] = pop.unionids[i]
        assert p == expected


def test_profile_errors(wechat_sim: SimulatorServer) -> None:
    client = client_for(wechat_sim)
    openids = list(client.user.iter_followers())
    assert errcode_of(client.user.get_batch, openids[:101]) == 40032
    assert errcode_of(client.user.get_batch, [*openids[:5], "o" + "x" * 27]) == 40003
    assert errcode_of(client.user.get, "o" + "x" * 27) == 40003


def test_user_get_daily_quota_resets_at_beijing_midnight(wechat_population: Population) -> None:
    with SimulatorServer(wechat_population, quotas={"user/get": 2}) as sim:
        client = client_for(sim)
        client.user.get_followers()
        client.user.get_followers()
        with pytest.raises(APILimitedException):
            client.user.get_followers()
        now = sim.clock.now()
        beijing = now + timedelta(hours=8)
        next_midnight = beijing.replace(hour=0, minute=0, second=0) + timedelta(days=1) - timedelta(hours=8)
        sim.clock.set(next_midnight - timedelta(seconds=1))
        client = client_for(sim)  # the first token expired on the way
        with pytest.raises(APILimitedException):
            client.user.get_followers()
        sim.clock.advance(1)
        client.user.get_followers()


# ---- tags and QR codes ---------------------------------------------------------------------------------


def test_tags(wechat_sim: SimulatorServer) -> None:
    client = client_for(wechat_sim)
    openids = list(client.user.iter_followers())
    names = {t["name"] for t in client.tag.get()}
    assert {"VIP", "新客"} <= names
    tag = client.tag.create("夏季活动")
    assert errcode_of(client.tag.create, "夏季活动") == 45157
    assert errcode_of(client.tag.create, "长" * 11) == 45158  # 33 bytes
    client.tag.tag_user(tag["id"], openids[:3])
    assert tag["id"] in client.tag.get_user_tag(openids[0])
    assert sorted(client.tag.iter_tag_users(tag["id"])) == sorted(openids[:3])
    assert tag["id"] in client.user.get(openids[1])["tagid_list"]
    client.tag.untag_user(tag["id"], openids[1])
    assert sorted(client.tag.iter_tag_users(tag["id"])) == sorted([openids[0], openids[2]])
    assert {t["id"]: t["count"] for t in client.tag.get()}[tag["id"]] == 2
    assert errcode_of(client.tag.tag_user, 99_999, openids[:1]) == 45159
    assert errcode_of(client.tag.tag_user, tag["id"], openids[:51]) == 40032
    assert errcode_of(client.tag.tag_user, tag["id"], ["o" + "x" * 27]) == 40003
    gone = next(o for o in wechat_sim.population.openids if o not in set(openids))
    assert errcode_of(client.tag.tag_user, tag["id"], [gone]) == 40003


def test_tag_members_page(wechat_sim: SimulatorServer) -> None:
    client = client_for(wechat_sim)
    tags = {t["name"]: t for t in client.tag.get()}
    members = list(client.tag.iter_tag_users(tags["上海"]["id"]))
    assert len(members) == tags["上海"]["count"] > 0
    page = client.tag.get_tag_users(tags["上海"]["id"], members[-1])
    assert page["count"] == 0 and "data" not in page


@pytest.mark.parametrize(
    ("action", "scene", "expires"),
    [
        ("QR_LIMIT_STR_SCENE", {"scene_str": "poster_mall_sh"}, None),
        ("QR_LIMIT_SCENE", {"scene_id": 1001}, None),
        ("QR_STR_SCENE", {"scene_str": "ref_campaign"}, 604_800),
        ("QR_SCENE", {"scene_id": 123}, 60),
    ],
)
def test_qrcode_create(
    wechat_sim: SimulatorServer, action: str, scene: dict[str, object], expires: int
) -> None:
    data: dict[str, object] = {"action_name": action, "action_info": {"scene": scene}}
    if action == "QR_STR_SCENE":
        data["expire_seconds"] = expires
    answer = client_for(wechat_sim).qrcode.create(data)
    assert answer["ticket"] and answer["url"].startswith("http://weixin.qq.com/q/")
    assert answer.get("expire_seconds") == expires


def test_qrcode_errors(wechat_sim: SimulatorServer) -> None:
    client = client_for(wechat_sim)
    assert errcode_of(client.qrcode.create, {"action_name": "QR_NOPE", "action_info": {"scene": {}}}) == 40052
    bad = {"action_name": "QR_LIMIT_SCENE", "action_info": {"scene": {"scene_id": 100_001}}}
    assert errcode_of(client.qrcode.create, bad) == 40053


# ---- the request log, the clock, share reads, orders ---------------------------------------------------


def test_request_log_redacts_tokens_and_secrets(wechat_sim: SimulatorServer, tmp_path: Path) -> None:
    client = client_for(wechat_sim)
    openids = list(client.user.iter_followers())
    client.user.get_batch(openids[:2])
    log = wechat_sim.requests()
    assert [e["path"] for e in log] == ["/cgi-bin/token", "/cgi-bin/user/get", "/cgi-bin/user/get",
                                        "/cgi-bin/user/info/batchget"]  # fmt: skip
    assert log[0]["query"]["secret"] == "REDACTED"
    assert all(e["query"]["access_token"] == "REDACTED" for e in log[1:])
    assert log[3]["json"] == {"user_list": [{"openid": o} for o in openids[:2]]}
    text = json.dumps(log)
    assert wechat_sim.secret not in text and client.access_token not in text
    over_http = httpx.get(wechat_sim.base_url + "/_sim/requests", params={"since": 2}).json()["requests"]
    assert over_http == log[2:]
    saved = wechat_sim.save_log(tmp_path / "log.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in saved] == log


def test_clock_over_http(wechat_sim: SimulatorServer) -> None:
    start = wechat_sim.clock.now()
    answer = httpx.post(wechat_sim.base_url + "/_sim/clock", json={"advance": 90}).json()
    assert answer["now"] == (start + timedelta(seconds=90)).isoformat()
    answer = httpx.post(wechat_sim.base_url + "/_sim/clock", json={"set": "2026-09-02T00:00:00+00:00"}).json()
    assert wechat_sim.clock.now().isoformat() == answer["now"] == "2026-09-02T00:00:00+00:00"


def pull_share_reads(url: str, cursor: str = "", limit: int = 50) -> Iterator[dict[str, object]]:
    while True:
        page = httpx.get(url, params={"cursor": cursor, "limit": limit}).json()
        yield from page["reads"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return


def test_share_reads_follow_the_clock_and_resume_from_a_cursor(wechat_population: Population) -> None:
    pop = wechat_population
    middle = pop.start + (pop.end - pop.start) / 2
    with SimulatorServer(pop, clock_at=middle) as sim:
        first = list(pull_share_reads(sim.share_reads_url))
        assert first and all(int(str(r["time"])) <= sim.clock.timestamp() for r in first)
        sim.clock.set(pop.end)
        more = list(pull_share_reads(sim.share_reads_url, cursor=str(first[-1]["id"])))
    assert more and not {r["id"] for r in first} & {r["id"] for r in more}
    assert [r["id"] for r in first + more] == [r.id for r in pop.share_reads]
    assert first[0] == pop.share_reads[0]._asdict()


def test_orders_export_reads_as_a_purchases_import(wechat_sim: SimulatorServer, tmp_path: Path) -> None:
    answer = httpx.get(wechat_sim.base_url + "/_sim/orders.csv", params={"account": "brand"})
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == ["order_id", "amount", "time", "currency", "openid", "account", "unionid", "phone"]
    path = wechat_sim.population.write_orders_csv(tmp_path / "orders.csv", account="brand")
    assert path.read_text(encoding="utf-8").splitlines() == answer.text.splitlines()
    records = list(OrderReader(path, tz=UTC, accounts={"brand": wechat_sim.appid}))
    assert len(records) == len(rows) - 1 == len(wechat_sim.population.orders)
    assert [r for r in records if not isinstance(r, PurchaseRecord)] == []


def test_public_surface() -> None:
    import connectors.wechat_sim as sim

    assert set(sim.__all__) == {
        "Action", "BackgroundServer", "Credentials", "DEFAULT_PER_MINUTE", "DEFAULT_QUOTAS", "Order",
        "Population", "PushResult", "ShareRead", "SimClock", "SimulatorServer", "generate_population",
        "push_actions",
    }  # fmt: skip
    assert all(hasattr(sim, name) for name in sim.__all__)


def test_concurrent_clients_get_consistent_answers(wechat_sim: SimulatorServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    token = fresh_token(wechat_sim)
    openids = list(client_for(wechat_sim, access_token=token).user.iter_followers())
    chunks = [openids[k : k + 20] for k in range(0, len(openids), 20)]

    def fetch(chunk: list[str]) -> list[str]:
        return [p["openid"] for p in client_for(wechat_sim, access_token=token).user.get_batch(chunk)]

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(fetch, chunks)) == chunks
    batch_calls = [e for e in wechat_sim.requests() if e["path"] == "/cgi-bin/user/info/batchget"]
    assert len(batch_calls) == len(chunks) and all(e["errcode"] == 0 for e in batch_calls)
    assert len({e["seq"] for e in wechat_sim.requests()}) == len(wechat_sim.requests())
