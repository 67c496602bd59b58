"""What the bot stores: referrals, follows, the last action; exactly once under races; slow rules."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from connectors.wechat_sim import SimulatorServer, push_actions
from connectors.wechat_sim.population import Action
from scrm.group_commit import GroupCommit
from scrm.inbound import InboundRecord, is_following
from scrm.models import FollowerActivity
from scrm.store import Store
from tests.web.bot_env import RULES, count, load, running_bot, write_config

T0 = 1_790_000_000


def _creds(sim: SimulatorServer) -> dict[str, str]:
    return {"token": sim.token, "appid": sim.appid, "encoding_aes_key": sim.encoding_aes_key}


def _current_followers(sim: SimulatorServer, n: int) -> list[str]:
    pop, now = sim.population, sim.clock.timestamp()
    return [
        openid
        for i, openid in enumerate(pop.openids)
        if pop.first_subscribe[i] <= now and pop.unsubscribe[i] == 0
    ][:n]


def test_referral_follow_and_unsubscribe(wechat_sim: SimulatorServer, store: Store, tmp_path: Path) -> None:
    settings = load(write_config(tmp_path, store.url, wechat_sim))
    a, b = wechat_sim.population.openids[:2]
    script = [
        Action(T0, a, "subscribe", key="qrscene_poster_mall_sh"),
        Action(T0 + 60, b, "subscribe", key=f"qrscene_ref_{a}"),
        Action(T0 + 120, b, "text", content="hello there", msgid=4_000_001),
        Action(T0 + 180, b, "unsubscribe"),
    ]
    with running_bot(settings, store) as url:
        results = push_actions(url, script, mode="safe", seed=3, **_creds(wechat_sim))  # type: ignore[arg-type]
    assert f"through ref_{a}" in results[1].reply
    with store.connect() as conn:
        customer: dict[str, int] = dict(
            conn.execute(sa.text("SELECT value, customer_id FROM identity WHERE kind = 'openid'")).all()
        )
        relations = conn.execute(sa.text("SELECT kind, source_id, target_id FROM relation")).all()
        follows = conn.execute(
            sa.text("SELECT customer_id, channel, unsubscribed_at FROM follow ORDER BY subscribed_at")
        ).all()
        kinds = conn.execute(
            sa.text("SELECT kind, content, channel FROM interaction ORDER BY occurred_at")
        ).all()
        act = FollowerActivity.__table__  # type: ignore[attr-defined]
        activity = conn.execute(sa.select(act).where(act.c.customer_id == customer[b])).one()
    assert [tuple(r) for r in relations] == [("referred_by", customer[b], customer[a])]
    assert [(r.customer_id, r.channel, r.unsubscribed_at is None) for r in follows] == [
        (customer[a], "poster_mall_sh", True),
        (customer[b], f"ref_{a}", False),
    ]
    assert [tuple(k) for k in kinds] == [
        ("subscribe", "", "poster_mall_sh"),
        ("subscribe", "", f"ref_{a}"),
        ("text", "hello there", ""),
        ("unsubscribe", "", ""),
    ]
    assert activity.last_action_kind == "unsubscribe"
    assert activity.last_action_at == datetime.fromtimestamp(T0 + 180, UTC)
    assert not is_following(store, wechat_sim.appid, b) and is_following(store, wechat_sim.appid, a)


SLOW_RULES = (
    RULES
    + """
[bot.rules.slow]
match = "exact"
keywords = ["report"]
template = "slow.txt.j2"
timeout_seconds = 0.3
priority = 50
"""
)


def test_a_slow_rule_answers_success_then_a_service_message(
    wechat_sim: SimulatorServer, store: Store, tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "slow.txt.j2").write_text("{{ slow_lookup(openid) }}", encoding="utf-8")
    (templates / "default.txt.j2").write_text("default", encoding="utf-8")
    bot = f'templates = "{templates}"'
    settings = load(write_config(tmp_path, store.url, wechat_sim, rules=SLOW_RULES, bot=bot))

    def slow_lookup(openid: str) -> str:
        time.sleep(2.0)
        return f"Your report, {openid}: 3 orders."

    openid = _current_followers(wechat_sim, 1)[0]
    action = wechat_sim.act(openid, "text", content="report")  # opens the customer-service window
    started = time.monotonic()
    with running_bot(settings, store, template_globals={"slow_lookup": slow_lookup}) as url:
        (result,) = push_actions(url, [action], mode="safe", seed=4, **_creds(wechat_sim))  # type: ignore[arg-type]
        answered = time.monotonic() - started
        deadline = time.monotonic() + 10
        while not wechat_sim.sent and time.monotonic() < deadline:
            time.sleep(0.05)
        # a retry of the message gets the stored answer and sends nothing again
        (retry,) = push_actions(url, [action], mode="safe", seed=5, **_creds(wechat_sim))  # type: ignore[arg-type]
        deadline = time.monotonic() + 5
        while count(store, "inbound_message", "WHERE status = 'sent'") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert (result.status, result.body, result.attempts) == (200, "success", 1)
    assert answered < 2.0  # answered before the lookup finished
    assert retry.body == "success"
    sends = [r for r in wechat_sim.requests() if r["path"].endswith("message/custom/send")]
    assert len(sends) == 1 and sends[0]["errcode"] == 0
    assert [(m["openid"], m["payload"]) for m in wechat_sim.sent] == [
        (openid, {"content": f"Your report, {openid}: 3 orders."})
    ]
    assert count(store, "inbound_message", "WHERE status = 'sent' AND rule = 'slow'") == 1


def _records(n: int) -> list[InboundRecord]:
    at = datetime.fromtimestamp(T0, UTC)
    return [
        InboundRecord("wechat", "wx_race_app_0001", f"o_race_{i % 7}", "text", at, 7_000_000 + i, f"m{i}")
        for i in range(n)
    ]


def test_two_writers_racing_on_the_same_messages_store_each_once(database_url: str) -> None:
    """Two stores (two engines, as two server processes) submit the same 60 messages at once."""
    first, second = Store(database_url), Store(database_url)
    first.upgrade()
    with first.connect() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO account (name, platform, external_id, display_name, created_at) "
                "VALUES ('race', 'wechat', 'wx_race_app_0001', '', :t)"
            ),
            {"t": datetime.now(UTC)},
        )
    writers = [GroupCommit(first, window=0.001), GroupCommit(second, window=0.001)]
    records = _records(60)
    try:
        futures = [
            (i, w.submit(r, "rule", f"<xml>reply {i}</xml>", "replied"))
            for i, r in enumerate(records)
            for w in writers
        ]
        outcomes = [(i, f.result(timeout=30)) for i, f in futures]
    finally:
        for w in writers:
            w.close()
    handled = [i for i, o in outcomes if not o.duplicate]
    assert sorted(handled) == list(range(60))  # each message handled by exactly one writer
    assert all(o.reply == f"<xml>reply {i}</xml>" for i, o in outcomes)  # the loser answers the stored reply
    assert count(first, "inbound_message") == 60
    assert count(first, "interaction") == 60
    assert count(first, "identity") == 7 and count(first, "customer") == 7
    first.close()
    second.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.postgres
def test_scrm_serve_with_two_workers_handles_a_duplicate_once(
    wechat_sim: SimulatorServer, pg_url: str, pg_schema: str, tmp_path: Path
) -> None:
    from tests.conftest import pg_store_url

    url = pg_store_url(pg_url, pg_schema)
    setup = Store(url)
    setup.upgrade()
    setup.close()
    config = write_config(tmp_path, url, wechat_sim)
    port = _free_port()
    scrm = Path(sys.executable).with_name("scrm")
    env = {**os.environ, "SCRM_CONFIG": str(config)}
    cmd = [str(scrm), "serve", "--port", str(port), "--workers", "2"]
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90  # two worker processes start slowly on a busy machine
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("scrm serve did not start: " + (tmp_path / "serve.log").read_text())
        action = Action(T0, wechat_sim.population.openids[0], "text", content="help", msgid=5_000_001)
        with ThreadPoolExecutor(8) as pool:
            results = list(
                pool.map(
                    lambda seed: push_actions(
                        base + "/wechat/brand",
                        [action],
                        mode="safe",
                        seed=seed,
                        **_creds(wechat_sim),  # type: ignore[arg-type]
                    )[0],
                    range(16),
                )
            )
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
    assert {r.status for r in results} == {200}, (tmp_path / "serve.log").read_text()
    assert len({r.reply.split("<CreateTime>")[0] for r in results}) == 1
    store = Store(url)
    assert count(store, "inbound_message") == 1 and count(store, "interaction") == 1
    store.close()
