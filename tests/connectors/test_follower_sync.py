"""Follower sync from the running simulator into SQLite and PostgreSQL, through the public entry points."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from connectors.follower_sync import sync_wechat
from connectors.sync import import_purchases
from connectors.wechat import WeChatConnector
from connectors.wechat_sim import Population, generate_population
from connectors.wechat_sim.server import SimulatorServer
from scrm.cli import cli
from scrm.config import Settings, load_settings
from scrm.errors import TokenRejected
from scrm.models import Customer, CustomerTag, Follow, Identity, Interaction, Purchase, Relation, Tag
from scrm.store import Store

APPID, SECRET = "wx00000000brand1", "s3cret-value-never-printed"
ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, database_url: str, sim: SimulatorServer, **sync: Any) -> Path:
    options = {"batch_size": 500, "backoff_seconds": 0.01, **sync}
    lines = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in options.items())
    path.write_text(
        f"""
[database]
url = "{database_url}"

[sync]
{lines}

[accounts.brand]
platform = "wechat"
appid = "{APPID}"
secret = "{SECRET}"
api_base = "{sim.base_url}"
share_reads_url = "{sim.share_reads_url}"
""",
        encoding="utf-8",
    )
    return path


def dump(store: Store) -> dict[str, Any]:
    """The store's content by natural keys (customers named by their identity keys), ids left out."""
    t = {
        m.__tablename__: m.__table__  # type: ignore[attr-defined]
        for m in (Identity, Customer, Follow, Relation, Tag, CustomerTag, Interaction)
    }
    with store.connect() as conn:
        keys: dict[int, list[tuple[str, str, str]]] = {}
        for cid, kind, scope, value in conn.execute(
            sa.select(
                t["identity"].c.customer_id,
                t["identity"].c.kind,
                t["identity"].c.scope,
                t["identity"].c.value,
            )
        ):
            keys.setdefault(cid, []).append((kind, scope, value))
        label = {cid: tuple(sorted(v)) for cid, v in keys.items()}

        def rows(query: Any) -> list[tuple[Any, ...]]:
            return sorted(tuple(row) for row in conn.execute(query))

        f, r, x = t["follow"].c, t["relation"].c, t["interaction"].c
        tag, ct, cu = t["tag"].c, t["customer_tag"].c, t["customer"].c
        return {
            "customers": sorted(
                label[c] for c in conn.execute(sa.select(cu.id).where(cu.merged_into_id.is_(None))).scalars()
            ),
            "merged": conn.execute(
                sa.select(sa.func.count()).where(cu.merged_into_id.is_not(None))
            ).scalar_one(),
            "follows": [
                (label[c], a, b, s, ch)
                for c, a, b, s, ch in rows(
                    sa.select(f.customer_id, f.subscribed_at, f.unsubscribed_at, f.scene, f.channel)
                )
            ],
            "relations": sorted(
                (k, label[s], label[d], at)
                for k, s, d, at in rows(sa.select(r.kind, r.source_id, r.target_id, r.first_at))
            ),
            "tags": rows(sa.select(tag.name, tag.external_id)),
            "customer_tags": sorted(
                (label[c], name)
                for c, name in conn.execute(
                    sa.select(ct.customer_id, tag.name).join_from(t["customer_tag"], t["tag"])
                )
            ),
            "interactions": sorted(
                (e, k, label[c], label[d], at, text)
                for e, k, c, d, at, text in rows(
                    sa.select(
                        x.external_id, x.kind, x.customer_id, x.target_customer_id, x.occurred_at, x.content
                    )
                )
            ),
        }


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(generate_population(followers=2_000, seed=7), appid=APPID, secret=SECRET) as server:
        yield server


def settings_for(tmp_path: Path, store: Store, sim: SimulatorServer, **sync: Any) -> Settings:
    """Settings on ``store``'s database (the same URL the store fixture was made from)."""
    url = store.engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    return load_settings(write_config(tmp_path / "config.toml", url, sim, **sync))


def truth(pop: Population, at: datetime) -> dict[str, Any]:
    now = int(at.timestamp())
    live = [int(i) for i in pop.subscribed_mask(now).nonzero()[0]]
    return {
        "followers": {pop.openids[i]: pop.subscribe_time(i, now) for i in live},
        "referred": {
            pop.openids[i]: pop.qr_scene_str[i][4:] for i in live if pop.qr_scene_str[i].startswith("ref_")
        },
        "reads": [r for r in pop.share_reads if r.time <= now],
    }


def follows_by_openid(store: Store) -> dict[str, list[tuple[datetime, datetime | None, str, str]]]:
    f, i = Follow.__table__.c, Identity.__table__.c  # type: ignore[attr-defined]
    query = (
        sa.select(i.value, f.subscribed_at, f.unsubscribed_at, f.scene, f.channel)
        .join_from(Follow.__table__, Identity.__table__, i.customer_id == f.customer_id)  # type: ignore[attr-defined]
        .where(i.kind == "openid")
        .order_by(f.subscribed_at)
    )
    out: dict[str, list[tuple[datetime, datetime | None, str, str]]] = {}
    with store.connect() as conn:
        for openid, a, b, scene, channel in conn.execute(query):
            out.setdefault(openid, []).append((a, b, scene, channel))
    return out


def test_first_sync_stores_followers_channels_referrals_tags_and_share_reads(
    tmp_path: Path, store: Store, sim: SimulatorServer
) -> None:
    settings = settings_for(tmp_path, store, sim)
    seen: list[tuple[int, int]] = []
    report = sync_wechat(store, settings, progress=lambda done, total: seen.append((done, total)))
    pop, expected = sim.population, truth(sim.population, sim.clock.now())
    followers = expected["followers"]
    assert report.followers == len(followers) == report.new
    assert report.unsubscribed == report.resubscribed == report.updated == 0
    assert seen[-1] == (len(followers), len(followers))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    follows = follows_by_openid(store)
    assert set(follows) >= set(followers)
    for openid, since in followers.items():
        ((subscribed_at, unsubscribed_at, scene, channel),) = follows[openid]
        i = pop.index[openid]
        assert int(subscribed_at.timestamp()) == since and unsubscribed_at is None
        assert (scene, channel) == (pop.scene[i], pop.qr_scene_str[i])

    with store.connect() as conn:
        pairs = set(
            conn.execute(
                sa.text(
                    "SELECT s.value, t.value FROM relation r "
                    "JOIN identity s ON s.customer_id = r.source_id AND s.kind = 'openid' "
                    "JOIN identity t ON t.customer_id = r.target_id AND t.kind = 'openid' "
                    "WHERE r.kind = 'referred_by'"
                )
            ).all()
        )
        assert pairs == set(expected["referred"].items())
        assert report.referrals == len(pairs) > 50

        tags = dict(conn.execute(sa.text("SELECT external_id, name FROM tag")).all())
        assert tags == {str(k): v for k, v in pop.tags.items()}
        members = set(
            conn.execute(
                sa.text(
                    "SELECT t.external_id, i.value FROM customer_tag ct JOIN tag t ON t.id = ct.tag_id "
                    "JOIN identity i ON i.customer_id = ct.customer_id AND i.kind = 'openid'"
                )
            ).all()
        )
        live = {pop.index[o] for o in followers}
        assert members == {
            (str(tag), pop.openids[i]) for tag, who in pop.tag_members.items() for i in who if i in live
        }
        assert report.tags_added == len(members)

        reads = conn.execute(
            sa.text(
                "SELECT x.external_id, s.value, r.value, x.content FROM interaction x "
                "JOIN identity s ON s.customer_id = x.customer_id AND s.kind = 'openid' "
                "JOIN identity r ON r.customer_id = x.target_customer_id AND r.kind = 'openid' "
                "WHERE x.kind = 'share_read' AND x.platform = 'wechat'"
            )
        ).all()
        assert sorted(reads) == sorted((r.id, r.sharer, r.reader, r.article) for r in expected["reads"])
        assert report.share_reads == len(reads) > 100
        unionids = conn.execute(sa.text("SELECT count(*) FROM identity WHERE kind = 'unionid'")).scalar_one()
        assert unionids == sum(1 for o in followers if pop.unionids[pop.index[o]])


def test_profiles_are_read_100_at_a_time(tmp_path: Path, store: Store, sim: SimulatorServer) -> None:
    sync_wechat(store, settings_for(tmp_path, store, sim, concurrency=3))
    calls = [r for r in sim.requests() if r["path"] == "/cgi-bin/user/info/batchget"]
    sizes = [len(c["json"]["user_list"]) for c in calls]
    assert max(sizes) == 100
    assert sum(sizes) == len(sim.state.subscribed())


def test_a_second_sync_with_nothing_new_changes_nothing(
    tmp_path: Path, store: Store, sim: SimulatorServer
) -> None:
    settings = settings_for(tmp_path, store, sim)
    sync_wechat(store, settings)
    before = dump(store)
    again = sync_wechat(store, settings)
    assert (again.new, again.updated, again.unsubscribed, again.resubscribed) == (0, 0, 0, 0)
    assert (again.referrals, again.tags_added, again.tags_removed, again.share_reads) == (0, 0, 0, 0)
    assert not again.merges and not again.resumed
    assert dump(store) == before


def test_reading_in_a_child_process_makes_the_same_store_and_report(
    tmp_path: Path, store: Store, sim: SimulatorServer
) -> None:
    with closing(Store(f"sqlite:///{tmp_path / 'threads.db'}")) as threads:
        threads.upgrade()
        config = write_config(tmp_path / "threads.toml", str(threads.url), sim, reader_process="never")
        expected = sync_wechat(threads, load_settings(config))
        reference = dump(threads)
    since = len(sim.requests())
    report = sync_wechat(store, settings_for(tmp_path, store, sim, reader_process="always"))
    assert dump(store) == reference
    fields = ("followers", "new", "updated", "customers_created", "referrals", "tags_added", "share_reads")
    assert [getattr(report, f) for f in fields] == [getattr(expected, f) for f in fields]
    # the same requests, each profile asked for once, and one token (the reader used the sync's)
    assert Counter(r["path"] for r in sim.requests(since)) == Counter(
        r["path"] for r in sim.requests()[:since]
    )
    asked = [
        o["openid"]
        for r in sim.requests(since)
        if r["path"] == "/cgi-bin/user/info/batchget"
        for o in r["json"]["user_list"]
    ]
    assert len(asked) == len(set(asked)) == len(sim.state.subscribed())
    assert sum(r["path"] == "/cgi-bin/token" for r in sim.requests(since)) == 1


def test_unionid_merges_followers_with_the_buyers_of_order_imports(
    tmp_path: Path, store: Store, sim: SimulatorServer
) -> None:
    """One shop knows buyers by unionid, another by openid: the sync's profiles carry both and merge them."""
    settings = settings_for(tmp_path, store, sim)
    orders = sim.population.write_orders_csv(tmp_path / "orders.csv", account="brand")
    header, *rows = [line.split(",") for line in orders.read_text(encoding="utf-8").splitlines()]
    col = {name: k for k, name in enumerate(header)}
    by_unionid = tmp_path / "by_unionid.csv"
    by_unionid.write_text(
        "order_id,amount,time,unionid\n"
        + "".join(f"{r[0]},{r[1]},{r[2]},{r[col['unionid']]}\n" for r in rows if r[col["unionid"]])
    )
    by_openid = tmp_path / "by_openid.csv"
    by_openid.write_text(
        "order_id,amount,time,openid,account\n"
        + "".join(f"{r[0]},{r[1]},{r[2]},{r[col['openid']]},brand\n" for r in rows if r[col["openid"]])
    )
    assert import_purchases(store, settings, by_unionid, source="union-shop").imported > 10
    assert import_purchases(store, settings, by_openid, source="open-shop").imported > 100

    report = sync_wechat(store, settings)
    pop = sim.population
    live = truth(pop, sim.clock.now())["followers"]
    unionid_buyers = {r[col["unionid"]] for r in rows} - {""}
    openid_buyers = {r[col["openid"]] for r in rows} - {""}
    both = {o for o in live if pop.unionids[pop.index[o]] in unionid_buyers and o in openid_buyers}
    assert len(both) >= 5
    assert len(report.merges) == len(both)
    assert {m.key.kind for m in report.merges} <= {"openid", "unionid"}
    p, i = Purchase.__table__.c, Identity.__table__.c  # type: ignore[attr-defined]
    with store.connect() as conn:
        sources = {}
        for openid, source in conn.execute(
            sa.select(i.value, p.source)
            .join_from(Identity.__table__, Purchase.__table__, p.customer_id == i.customer_id)  # type: ignore[attr-defined]
            .where(i.kind == "openid")
            .distinct()
        ):
            sources.setdefault(openid, set()).add(source)
    for openid in both:  # one customer now holds the orders of both shops
        assert sources[openid] == {"union-shop", "open-shop"}
    for openid in live:
        if pop.unionids[pop.index[openid]] in unionid_buyers:
            assert "union-shop" in sources[openid]


def test_unsubscribes_and_resubscribes_as_the_clock_moves(tmp_path: Path, store: Store) -> None:
    pop = generate_population(followers=2_000, seed=5)
    middle = pop.start + (pop.end - pop.start) / 2
    with SimulatorServer(pop, appid=APPID, secret=SECRET, clock_at=middle) as sim:
        settings = settings_for(tmp_path, store, sim)
        first_time = datetime(2030, 1, 1, tzinfo=UTC)
        sync_wechat(store, settings, now=first_time)
        sim.clock.set(pop.end)
        second_time = first_time + timedelta(days=1)
        report = sync_wechat(store, settings, now=second_time)
        before, after = truth(pop, middle)["followers"], truth(pop, pop.end)["followers"]
        left = set(before) - set(after)
        came = set(after) - set(before)
        back = {o for o in set(before) & set(after) if after[o] != before[o]}
        assert left and back
        assert report.unsubscribed == len(left)
        assert report.resubscribed == len(back)
        assert report.new == len(came)
        follows = follows_by_openid(store)
        for openid in left:
            assert [b for _, b, _, _ in follows[openid]] == [second_time]
        for openid in back:
            periods = follows[openid]
            assert [int(a.timestamp()) for a, _, _, _ in periods] == [before[openid], after[openid]]
            # closed when we learnt they had come back: at their new subscribe time
            assert [b for _, b, _, _ in periods] == [datetime.fromtimestamp(after[openid], UTC), None]
        # and a third sync has nothing to do
        third = sync_wechat(store, settings, now=second_time + timedelta(days=1))
        assert (third.new, third.updated, third.unsubscribed, third.resubscribed) == (0, 0, 0, 0)


def test_tags_taken_off_on_the_platform_are_taken_off_here(
    tmp_path: Path, store: Store, sim: SimulatorServer
) -> None:
    settings = settings_for(tmp_path, store, sim)
    sync_wechat(store, settings)
    pop = sim.population
    live = {pop.openids[i] for i in sim.state.subscribed().tolist()}
    members = sorted(pop.openids[i] for i in pop.tag_members[103] if pop.openids[i] in live)[:30]
    with WeChatConnector.from_settings(settings)[1] as wechat:
        wechat.untag_followers(103, members)
        new_tag = wechat.create_tag("春季活动")
        wechat.tag_followers(new_tag.id, members[:5])
    report = sync_wechat(store, settings)
    assert report.tags_removed == 30 and report.tags_added == 5
    assert report.updated == 30
    with store.connect() as conn:
        tagged = set(
            conn.execute(
                sa.text(
                    "SELECT t.name, i.value FROM customer_tag ct JOIN tag t ON t.id = ct.tag_id "
                    "JOIN identity i ON i.customer_id = ct.customer_id AND i.kind = 'openid' "
                    "WHERE i.value IN :ids"
                ).bindparams(sa.bindparam("ids", expanding=True)),
                {"ids": members},
            ).all()
        )
    assert {(name, o) for name, o in tagged if name in ("上海", "春季活动")} == {
        ("春季活动", o) for o in members[:5]
    }


def no_process_left(marker: str, seconds: float = 5.0) -> bool:
    """Whether, within ``seconds``, no live process has ``marker`` in its command line (Linux /proc)."""
    deadline = time.monotonic() + seconds
    while True:
        alive = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                state = stat.read_text().rsplit(")", 1)[1].split()[0]
                cmdline = (stat.parent / "cmdline").read_bytes().decode(errors="replace")
            except (OSError, IndexError):
                continue  # gone meanwhile
            if marker in cmdline and state != "Z":
                alive.append(stat.parent.name)
        if not alive or time.monotonic() > deadline:
            return not alive
        time.sleep(0.05)


@pytest.fixture(scope="module")
def kill_population() -> Population:
    return generate_population(followers=8_000, seed=13)


@pytest.fixture(scope="module")
def uninterrupted(kill_population: Population, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The store an uninterrupted sync of ``kill_population`` makes (SQLite; compared by natural keys)."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    with (
        SimulatorServer(kill_population, appid=APPID, secret=SECRET) as sim,
        closing(Store(f"sqlite:///{folder / 'reference.db'}")) as reference,
    ):
        reference.upgrade()
        sync_wechat(reference, load_settings(write_config(folder / "ref.toml", str(reference.url), sim)))
        return dump(reference)


@pytest.mark.parametrize(
    ("path", "seen", "reader"),
    [
        ("/cgi-bin/user/info/batchget", 30, "never"),
        ("/cgi-bin/user/info/batchget", 30, "always"),
        ("/track/share_reads", 1, "auto"),
    ],
    ids=["while-listing", "while-listing-in-a-reader-process", "while-pulling-share-reads"],
)
def test_a_sync_killed_mid_way_resumes_to_the_same_store(
    tmp_path: Path,
    database_url: str,
    path: str,
    seen: int,
    reader: str,
    kill_population: Population,
    uninterrupted: dict[str, Any],
) -> None:
    with SimulatorServer(kill_population, appid=APPID, secret=SECRET) as sim:
        config = write_config(
            tmp_path / "killed.toml", database_url, sim, batch_size=500, concurrency=2, reader_process=reader
        )
        with closing(Store(database_url)) as fresh:
            fresh.upgrade()
        command = [sys.executable, "-m", "scrm", "--config", str(config), "sync", "wechat", "--json"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        log = tmp_path / "killed.log"
        with log.open("wb") as err, subprocess.Popen(command, stdout=err, stderr=err, env=env) as child:
            deadline = time.monotonic() + 60
            while sum(r["path"] == path for r in sim.requests()) < seen:
                assert child.poll() is None, log.read_text()
                assert time.monotonic() < deadline
                time.sleep(0.002)
            child.send_signal(signal.SIGKILL)
        assert child.returncode == -signal.SIGKILL
        assert no_process_left(str(config))  # its reader process (a fork: same command line) died too
        with closing(Store(database_url)) as killed_store, killed_store.connect() as conn:
            row = conn.execute(
                sa.text("SELECT state, finished_at FROM sync_checkpoint WHERE kind = 'followers'")
            ).one()
        assert row.finished_at is None  # it really stopped half-way
        state = json.loads(row.state)
        since = len(sim.requests())
        with closing(Store(database_url)) as killed_store:
            resumed = sync_wechat(killed_store, load_settings(config))  # the next sync, run here
            assert resumed.resumed
            assert dump(killed_store) == uninterrupted
        # It went on from its checkpoint: profiles read again only for the followers not yet stored.
        total = len(sim.state.subscribed())
        left = total - state["done"] if state["phase"] == "list" else 0
        assert state["cursor"] is None  # fewer than 10,000 followers: one page
        redone = sum(r["path"] == "/cgi-bin/user/info/batchget" for r in sim.requests(since))
        assert redone == -(-left // 100)
        if path == "/track/share_reads":
            assert left == 0


def test_a_server_that_keeps_rejecting_tokens_stops_the_sync_with_a_clear_error(
    tmp_path: Path, store: Store, sim: SimulatorServer
) -> None:
    settings = settings_for(tmp_path, store, sim, max_token_refreshes=2)
    sim.reject_tokens(True)
    with pytest.raises(TokenRejected, match="refused 3 times in a row"):
        sync_wechat(store, settings)
    assert sum(r["path"] == "/cgi-bin/token" for r in sim.requests()) == 3
    result = CliRunner().invoke(cli, ["--config", str(settings.source), "sync", "wechat"])
    assert result.exit_code == 1
    assert "refused" in result.output and SECRET not in result.output
    assert "Traceback" not in result.output
    as_json = CliRunner().invoke(cli, ["--config", str(settings.source), "sync", "wechat", "--json"])
    assert as_json.exit_code == 1
    partial = json.loads(as_json.stdout)
    assert partial["followers"] == 0 and "refused 3 times" in partial["errors"][0]
    sim.reject_tokens(False)
    report = sync_wechat(store, settings)
    assert report.followers == len(sim.state.subscribed())


def test_cli_prints_a_summary_and_json(tmp_path: Path, store: Store, sim: SimulatorServer) -> None:
    settings = settings_for(tmp_path, store, sim)
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(settings.source), "sync", "wechat", "--account", "brand"])
    assert result.exit_code == 0, result.output
    assert f"{len(sim.state.subscribed()):,} followers" in result.output
    assert "new " in result.output and "share reads" in result.output
    again = runner.invoke(cli, ["--config", str(settings.source), "sync", "wechat", "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.output)
    assert data["new"] == data["updated"] == data["merged"] == 0
    assert data["followers"] == len(sim.state.subscribed())
    unknown = runner.invoke(cli, ["--config", str(settings.source), "sync", "wechat", "--account", "nope"])
    assert unknown.exit_code == 1 and "no WeChat account 'nope'" in unknown.output


def test_customer_shows_acquisition_channel_referrer_and_tags(
    tmp_path: Path, store: Store, sim: SimulatorServer
) -> None:
    settings = settings_for(tmp_path, store, sim)
    sync_wechat(store, settings)
    pop = sim.population
    live = truth(pop, sim.clock.now())["followers"]
    tagged = {pop.openids[i] for who in pop.tag_members.values() for i in who}
    openid = next(o for o in live if pop.qr_scene_str[pop.index[o]].startswith("ref_") and o in tagged)
    referrer = pop.qr_scene_str[pop.index[openid]][4:]
    i = Identity.__table__.c  # type: ignore[attr-defined]
    with store.connect() as conn:
        ids = dict(
            conn.execute(sa.select(i.value, i.customer_id).where(i.value.in_([openid, referrer]))).all()
        )
    runner = CliRunner()
    shown = runner.invoke(cli, ["--config", str(settings.source), "customer", str(ids[openid]), "--json"])
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    assert record["acquisition"]["channel"] == f"ref_{referrer}"
    assert record["acquisition"]["scene"] == pop.scene[pop.index[openid]]
    assert record["acquisition"]["referred_by"] == ids[referrer]
    expected_tags = sorted(pop.tags[t] for t, who in pop.tag_members.items() if pop.index[openid] in who)
    assert record["tags"] == expected_tags
    text = runner.invoke(cli, ["--config", str(settings.source), "customer", str(ids[openid])])
    assert f"Acquired: channel ref_{referrer}" in text.output
    assert f"referred by customer {ids[referrer]}" in text.output
