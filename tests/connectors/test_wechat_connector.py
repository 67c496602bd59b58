"""The WeChat connector against the running simulator, over real HTTP through wechatpy."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from connectors.base import Connector
from connectors.wechat import WeChatConnector
from connectors.wechat_sim import generate_population
from connectors.wechat_sim.server import SimulatorServer
from scrm.config import SyncSettings, WeChatAccount
from scrm.errors import ConnectorError, OutsideWindow, RateLimited, RecipientRefused, TokenRejected

APPID, SECRET = "wx00000000brand1", "s3cret-value-never-printed"


def _account(sim: SimulatorServer, *, secret: str = SECRET, share_reads: bool = True) -> WeChatAccount:
    return WeChatAccount(
        platform="wechat",
        appid=APPID,
        secret=SecretStr(secret),
        api_base=sim.base_url,
        share_reads_url=sim.share_reads_url if share_reads else "",
    )


def _connector(sim: SimulatorServer, **sync: object) -> WeChatConnector:
    settings = SyncSettings.model_validate({"backoff_seconds": 0.01, **sync})
    return WeChatConnector(_account(sim), settings)


def _calls(sim: SimulatorServer, path: str, since: int = 0) -> list[dict[str, object]]:
    return [r for r in sim.requests(since) if r["path"] == "/cgi-bin/" + path]


@pytest.fixture(scope="module")
def big_sim() -> Iterator[SimulatorServer]:
    """More than one page of followers (user/get answers 10,000 a page)."""
    pop = generate_population(followers=12_500, seed=11)
    with SimulatorServer(pop, appid=APPID, secret=SECRET) as sim:
        yield sim


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    pop = generate_population(followers=300, seed=7)
    with SimulatorServer(pop, appid=APPID, secret=SECRET) as server:
        yield server


def test_is_a_connector() -> None:
    assert issubclass(WeChatConnector, Connector)
    assert WeChatConnector.profile_batch_size == 100


def test_followers_page_by_10000_and_resume_from_a_cursor(big_sim: SimulatorServer) -> None:
    since = len(big_sim.requests())
    with _connector(big_sim) as wechat:
        pages = list(wechat.followers())
        expected = [big_sim.population.openids[i] for i in big_sim.state.subscribed().tolist()]
        assert len(expected) > 10_000
        assert [len(p.ids) for p in pages[:2]] == [10_000, len(expected) - 10_000]
        assert [i for p in pages for i in p.ids] == expected
        assert pages[0].total == len(expected)
        assert pages[-1].next_cursor is None
        # Resuming from the first page's cursor gives the rest, and only the rest.
        assert pages[0].next_cursor is not None
        rest = [i for p in wechat.followers(pages[0].next_cursor) for i in p.ids]
        assert rest == expected[10_000:]
    gets = _calls(big_sim, "user/get", since)
    assert gets[0]["query"].get("next_openid") in (None, "")  # type: ignore[union-attr]
    assert all(r["errcode"] == 0 for r in gets)


def test_profiles_in_batches_of_100_in_order_with_requests_in_flight(big_sim: SimulatorServer) -> None:
    ids = [big_sim.population.openids[i] for i in big_sim.state.subscribed()[:1_050].tolist()]
    since = len(big_sim.requests())
    with _connector(big_sim, concurrency=8) as wechat:
        batches = list(wechat.profiles(ids))
    assert [len(b) for b in batches] == [100] * 10 + [50]
    profiles = [p for b in batches for p in b]
    assert [p.openid for p in profiles] == ids
    pop = big_sim.population
    for p in profiles[:200]:
        i = pop.index[p.openid]
        assert p.subscribed
        assert p.unionid == pop.unionids[i]
        assert p.scene == pop.scene[i]
        assert p.qr_scene_str == pop.qr_scene_str[i]
        assert p.subscribe_time is not None
        assert int(p.subscribe_time.timestamp()) == pop.subscribe_time(i, big_sim.state.now())
    calls = _calls(big_sim, "user/info/batchget", since)
    assert len(calls) == 11
    assert all(len(c["json"]["user_list"]) <= 100 for c in calls)  # type: ignore[index]
    # eight threads shared one token: the simulator saw at most one token request for them
    assert len([r for r in big_sim.requests(since) if r["path"] == "/cgi-bin/token"]) <= 1


def test_tags_and_tag_operations(sim: SimulatorServer) -> None:
    with _connector(sim) as wechat:
        before = {t.name for t in wechat.tags()}
        assert before == set(sim.population.tags.values())
        tag = wechat.create_tag("vip-2026")
        ids = [sim.population.openids[i] for i in sim.state.subscribed()[:120].tolist()]
        wechat.tag_followers(tag.id, ids)
        assert {t.name: t.count for t in wechat.tags()}["vip-2026"] == 120
        wechat.untag_followers(tag.id, ids[:20])
        assert {t.name: t.count for t in wechat.tags()}["vip-2026"] == 100
        profile = next(iter(wechat.profiles(ids[50:51])))[0]
        assert tag.id in profile.tag_ids
    assert all(len(c["json"]["openid_list"]) <= 50 for c in _calls(sim, "tags/members/batchtagging"))  # type: ignore[index]


def test_share_reads_feed_pages_and_resumes(sim: SimulatorServer) -> None:
    now = sim.clock.now()
    visible = [r for r in sim.population.share_reads if r.time <= int(now.timestamp())]
    assert len(visible) > 5
    with _connector(sim) as wechat:
        pages = list(wechat.interactions(limit=4))
        reads = [r for p in pages for r in p.items]
        assert [r.id for r in reads] == [r.id for r in visible]
        assert reads[0].sharer == visible[0].sharer and reads[0].reader == visible[0].reader
        assert not pages[-1].has_more
        # from a cursor: only what came after it
        after = [r.id for p in wechat.interactions(pages[0].next_cursor) for r in p.items]
        assert after == [r.id for r in visible[4:]]


def test_no_share_reads_url_pulls_nothing(sim: SimulatorServer) -> None:
    with WeChatConnector(_account(sim, share_reads=False)) as wechat:
        assert list(wechat.interactions()) == []
    assert not [r for r in sim.requests() if r["path"] == "/track/share_reads"]


def test_a_server_that_keeps_rejecting_tokens_fails_clearly_and_boundedly(sim: SimulatorServer) -> None:
    sim.reject_tokens(True)
    limit = sys.getrecursionlimit()
    with _connector(sim, max_token_refreshes=3) as wechat, pytest.raises(TokenRejected) as info:
        wechat.tags()
    assert sys.getrecursionlimit() == limit
    assert info.value.errcode == 40001
    assert "refused 4 times in a row" in str(info.value)
    tokens = [r for r in sim.requests() if r["path"] == "/cgi-bin/token"]
    api = [r for r in sim.requests() if r["path"] == "/cgi-bin/tags/get"]
    assert len(tokens) == 4  # the first token and 3 refreshes
    assert len(api) == 4
    assert "s3cret" not in str(info.value)


def test_an_expired_token_is_refreshed_once_and_the_call_succeeds(sim: SimulatorServer) -> None:
    with _connector(sim) as wechat:
        wechat.tags()
        sim.clock.advance(seconds=7_300)  # past the token's 7,200 s life: 42001
        assert wechat.tags()
    codes = [r["errcode"] for r in _calls(sim, "tags/get")]
    assert codes == [0, 42001, 0]


def test_wrong_secret_is_token_rejected_naming_the_setting(sim: SimulatorServer) -> None:
    with WeChatConnector(_account(sim, secret="wrong")) as wechat, pytest.raises(TokenRejected) as info:
        wechat.tags()
    assert info.value.errcode == 40125
    assert "secret" in str(info.value)
    assert "wrong" not in str(info.value)


def test_rate_limit_backs_off_then_fails_with_rate_limited() -> None:
    pop = generate_population(followers=50, seed=3)
    with SimulatorServer(pop, appid=APPID, secret=SECRET, quotas={"user/get": 0}) as sim:
        slept: list[float] = []
        with _connector(sim, rate_limit_retries=3, backoff_seconds=0.5) as wechat:
            wechat.api.sleep = slept.append
            with pytest.raises(RateLimited) as info:
                list(wechat.followers())
        assert info.value.errcode == 45009
        assert len(_calls(sim, "user/get")) == 4
        # exponential backoff with jitter: 0.5, 1, 2 s each within +-50%
        for delay, base in zip(slept, (0.5, 1.0, 2.0), strict=True):
            assert 0.5 * base <= delay <= 1.5 * base


def test_rate_limit_that_clears_during_backoff_succeeds() -> None:
    pop = generate_population(followers=50, seed=3)
    with SimulatorServer(pop, appid=APPID, secret=SECRET, quotas={"user/get": 0}) as sim:

        def next_day(_delay: float) -> None:  # the platform raises the quota while we wait
            with sim.state.lock:
                sim.state.quotas["user/get"] = 10

        with _connector(sim) as wechat:
            wechat.api.sleep = next_day
            pages = list(wechat.followers())
        assert sum(len(p.ids) for p in pages) == len(sim.state.subscribed())
        assert [r["errcode"] for r in _calls(sim, "user/get")][:2] == [45009, 0]


def test_send_text_template_and_mass(sim: SimulatorServer) -> None:
    followers = [sim.population.openids[i] for i in sim.state.subscribed()[:3].tolist()]
    with _connector(sim) as wechat:
        with pytest.raises((RecipientRefused, OutsideWindow)):
            wechat.send_text(followers[0], "hello")  # no recent action of theirs: outside the window
        with pytest.raises(RecipientRefused) as info:
            wechat.send_text("o" + "x" * 27, "hello")
        assert info.value.errcode == 40003
        sent = wechat.send_template(followers[0], "TPL_EVENT", {"first": "Hi", "remark": "See you"})
        assert sent.msg_id
        first = wechat.send_mass_text("news", recipients=followers, client_msg_id="c-1")
        again = wechat.send_mass_text("news", recipients=followers, client_msg_id="c-1")
        assert first.msg_id and again.msg_id == first.msg_id
        assert first.recipients == 3
    mass = [m for m in sim.sent if m["kind"] == "mass"]
    assert sorted(m["openid"] for m in mass) == sorted(followers)  # each received it once
    assert [r["errcode"] for r in _calls(sim, "message/mass/send")] == [0, 45065]


def test_unreachable_platform_is_a_connector_error() -> None:
    account = WeChatAccount(
        platform="wechat", appid=APPID, secret=SecretStr(SECRET), api_base="http://127.0.0.1:9"
    )
    with (
        WeChatConnector(account, SyncSettings(timeout_seconds=2)) as wechat,
        pytest.raises(ConnectorError) as info,
    ):
        wechat.tags()
    assert "cannot reach" in str(info.value)
    assert SECRET not in str(info.value)


def test_threads_share_one_token_under_contention(big_sim: SimulatorServer) -> None:
    since = len(big_sim.requests())
    big_sim.clock.advance(seconds=7_300)  # every thread's first call finds the token expired
    ids = [big_sim.population.openids[i] for i in big_sim.state.subscribed()[:1_600].tolist()]
    errors: list[BaseException] = []
    with _connector(big_sim, concurrency=16) as wechat:

        def work() -> None:
            try:
                assert sum(len(b) for b in wechat.profiles(ids)) == len(ids)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert len([r for r in big_sim.requests(since) if r["path"] == "/cgi-bin/token"]) == 1


def test_tokens_and_secrets_stay_out_of_debug_logs(
    sim: SimulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG), _connector(sim) as wechat:
        wechat.tags()
        token = wechat.api.keeper.token(wechat.api.client())
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "access_token=***" in text  # urllib3 logged the request URL, redacted
    assert token not in text and SECRET not in text
