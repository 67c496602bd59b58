"""WeCom sync against the simulator on SQLite and PostgreSQL: what is stored, resume after kill -9,
idempotence, changes over the clock, the unionid merge with a WeChat follower, groups in the graph."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from connectors.follower_sync import sync_wechat
from connectors.wechat_sim import SimulatorServer, generate_population
from connectors.wecom_sim import WeComPopulation, WeComSimulator, generate_wecom_population
from connectors.wecom_sync import sync_wecom
from graph.build import load_graph
from scrm.cli import cli
from scrm.config import Settings, load_settings
from scrm.models import (
    Customer,
    CustomerGroup,
    GroupMembership,
    Identity,
    Interaction,
    Relation,
    StaffContact,
)
from scrm.store import Store

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, database_url: str, sim: WeComSimulator, extra: str = "", **sync: Any) -> Path:
    options = {"batch_size": 500, "backoff_seconds": 0.01, **sync}
    lines = "\n".join(f"{k} = {v!r}" for k, v in options.items())
    path.write_text(
        f"""
[database]
url = "{database_url}"

[sync]
{lines}

[accounts.corp]
platform = "wecom"
corpid = "{sim.corpid}"
secret = "{sim.secret}"
api_base = "{sim.base_url}"
events_url = "{sim.events_url}"
{extra}""",
        encoding="utf-8",
    )
    return path


def url_of(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False).replace("+psycopg", "")


def settings_for(tmp_path: Path, store: Store, sim: WeComSimulator, extra: str = "") -> Settings:
    return load_settings(write_config(tmp_path / "config.toml", url_of(store), sim, extra))


@pytest.fixture(scope="module")
def pop() -> WeComPopulation:
    return generate_wecom_population(1500, groups=100, memberships=2500, staff=10, seed=21)


@pytest.fixture
def sim(pop: WeComPopulation) -> Iterator[WeComSimulator]:
    with WeComSimulator(pop) as server:
        yield server


def dump(store: Store) -> dict[str, Any]:
    """The store by natural keys (customers named by their identity keys), ids and sync times left out."""
    ident, cust, sc = Identity.__table__.c, Customer.__table__.c, StaffContact.__table__.c  # type: ignore[attr-defined]
    grp, mem = CustomerGroup.__table__.c, GroupMembership.__table__.c  # type: ignore[attr-defined]
    rel, act = Relation.__table__.c, Interaction.__table__.c  # type: ignore[attr-defined]
    with store.connect() as conn:

        def rows(*columns: Any) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in conn.execute(sa.select(*columns))]

        label: dict[int | None, Any] = {None: None}
        for cid, kind, scope, value in rows(ident.customer_id, ident.kind, ident.scope, ident.value):
            label[cid] = tuple(sorted([*label.get(cid, ()), (kind, scope, value)]))
        live = conn.execute(sa.select(cust.id).where(cust.merged_into_id.is_(None))).scalars()
        chat = dict(rows(grp.id, grp.external_id))
        return {
            "customers": sorted(label[c] for c in live),
            "staff_contacts": sorted(
                (label[c], *rest)
                for c, *rest in rows(
                    sc.customer_id, sc.staff, sc.added_at, sc.add_way, sc.state, sc.removed_at, sc.removed_by
                )
            ),
            "groups": sorted(rows(grp.external_id, grp.name, grp.owner, grp.created_at)),
            "memberships": sorted(
                (chat[g], label[c], j, left is None, scene, label[i], s)
                for g, c, j, left, scene, i, s in rows(
                    mem.group_id,
                    mem.customer_id,
                    mem.joined_at,
                    mem.left_at,
                    mem.join_scene,
                    mem.invited_by_id,
                    mem.invited_by_staff,
                )
            ),
            "relations": sorted(
                (k, label[a], label[b], f)
                for k, a, b, f in rows(rel.kind, rel.source_id, rel.target_id, rel.first_at)
            ),
            "interactions": sorted(
                (e, k, label[c], ch)
                for e, k, c, ch in rows(act.external_id, act.kind, act.customer_id, act.channel)
                if k != "group_leave"
            ),
        }


def truth(pop: WeComPopulation, now: int) -> dict[str, int]:
    """What the corp looks like at ``now``, counted from the population itself."""
    follows = (pop.f_time <= now) & ~((pop.f_removed > 0) & (pop.f_removed <= now))
    follows &= pop.staff_enabled[pop.f_staff]
    groups = pop.g_time <= now
    members = (pop.m_kind == 2) & (pop.m_join <= now) & ~((pop.m_leave > 0) & (pop.m_leave <= now))
    members &= groups[pop.m_group]
    invited = members & (pop.m_invitor_kind == 2) & (pop.m_invitor != pop.m_who)
    pairs = {(int(a), int(b)) for a, b in zip(pop.m_who[invited], pop.m_invitor[invited], strict=True)}
    removed = (pop.f_removed > 0) & (pop.f_removed <= now)
    return {
        "staff_contact": int(follows.sum()),
        "customer_group": int(groups.sum()),
        "open_memberships": int(members.sum()),
        "invitations": len(pairs),
        "events": int(removed.sum()),
    }


def counts(store: Store) -> dict[str, int]:
    with store.connect() as conn:

        def one(sql: str) -> int:
            return int(conn.execute(sa.text(sql)).scalar_one())

        return {
            "staff_contact": one("SELECT count(*) FROM staff_contact WHERE removed_at IS NULL"),
            "customer_group": one("SELECT count(*) FROM customer_group"),
            "open_memberships": one("SELECT count(*) FROM group_membership WHERE left_at IS NULL"),
            "invitations": one("SELECT count(*) FROM relation WHERE kind = 'invited_to_group'"),
            "events": one(
                "SELECT count(*) FROM interaction "
                "WHERE kind IN ('staff_deleted_customer', 'customer_deleted_staff')"
            ),
        }


def test_a_sync_stores_contacts_groups_members_invitations_and_events(
    tmp_path: Path, store: Store, sim: WeComSimulator, pop: WeComPopulation
) -> None:
    report = sync_wecom(store, settings_for(tmp_path, store, sim), now=sim.clock.now())
    expected = truth(pop, sim.clock.timestamp())
    assert counts(store) == expected
    assert (report.staff_contacts, report.groups, report.joined) == (
        expected["staff_contact"],
        expected["customer_group"],
        expected["open_memberships"],
    )
    with store.connect() as conn:
        kinds = dict(conn.execute(sa.text("SELECT kind, count(*) FROM identity GROUP BY kind")).all())
        scopes = set(
            conn.execute(
                sa.text("SELECT DISTINCT scope FROM identity WHERE kind = 'wecom_external'")
            ).scalars()
        )
        channels = set(conn.execute(sa.text("SELECT DISTINCT state FROM staff_contact")).scalars())
        by_staff = conn.execute(
            sa.text("SELECT count(*) FROM group_membership WHERE invited_by_staff <> ''")
        ).scalar()
    assert (
        kinds["wecom_external"] >= len({int(c) for c in pop.f_contact[pop.staff_enabled[pop.f_staff]]}) // 2
    )
    assert scopes == {sim.corpid}
    assert {"store_sh_01", "kol_xiaohong", ""} <= channels
    assert by_staff and by_staff > 0


def test_a_second_sync_with_nothing_new_changes_nothing(
    tmp_path: Path, store: Store, sim: WeComSimulator
) -> None:
    settings = settings_for(tmp_path, store, sim)
    sync_wecom(store, settings, now=sim.clock.now())
    before = dump(store)
    again = sync_wecom(store, settings, now=sim.clock.now())
    assert (
        again.staff_contacts,
        again.groups_new,
        again.joined,
        again.left,
        again.invitations,
        again.events,
    ) == (
        0,
        0,
        0,
        0,
        0,
        0,
    )
    assert again.customers_created == 0 and not again.merges
    assert dump(store) == before


def test_joins_leaves_and_deletions_as_the_clock_moves(
    tmp_path: Path, store: Store, sim: WeComSimulator, pop: WeComPopulation
) -> None:
    settings = settings_for(tmp_path, store, sim)
    sync_wecom(store, settings, now=sim.clock.now())
    first = sim.clock.timestamp()
    sim.clock.advance(days=pop.future_days)
    later = sim.clock.now()
    report = sync_wecom(store, settings, now=later)
    now = sim.clock.timestamp()
    expected = truth(pop, now)
    got = counts(store)
    assert got["open_memberships"] == expected["open_memberships"]
    assert got["customer_group"] == expected["customer_group"] and got["events"] == expected["events"]
    # who left: members at the first sync whose stay ended before the second
    ext = (pop.m_kind == 2) & (pop.g_time[pop.m_group] <= first) & (pop.m_join <= first)
    left = ext & (pop.m_leave > first) & (pop.m_leave <= now)
    assert report.left == int(left.sum()) > 0
    with store.connect() as conn:
        left_at = GroupMembership.__table__.c.left_at  # type: ignore[attr-defined]
        closed = conn.execute(sa.select(left_at).distinct().where(left_at.is_not(None)))
        assert list(closed.scalars()) == [later]
        leaves = conn.execute(sa.text("SELECT count(*) FROM interaction WHERE kind = 'group_leave'")).scalar()
        removed = dict(
            conn.execute(
                sa.text(
                    "SELECT removed_by, count(*) FROM staff_contact "
                    "WHERE removed_at IS NOT NULL GROUP BY removed_by"
                )
            ).all()
        )
    assert leaves == report.left
    gone = (
        (pop.f_time <= first)
        & (pop.f_removed > first)
        & (pop.f_removed <= now)
        & pop.staff_enabled[pop.f_staff]
    )
    assert removed.get("staff", 0) == int((gone & (pop.f_removed_by == 1)).sum())
    assert removed.get("customer", 0) == int((gone & (pop.f_removed_by == 2)).sum())


def test_a_contact_and_a_follower_with_one_unionid_are_one_customer(tmp_path: Path, store: Store) -> None:
    wechat = generate_population(followers=300, seed=4)
    unionids = [u for u in wechat.unionids if u]
    corp = generate_wecom_population(400, groups=20, memberships=600, staff=6, unionids=unionids, seed=4)
    with SimulatorServer(wechat, appid="wx00000000brand1", secret="s") as oa, WeComSimulator(corp) as wecom:
        extra = (
            '\n[accounts.oa]\nplatform = "wechat"\nappid = "wx00000000brand1"\nsecret = "s"\n'
            f'api_base = "{oa.base_url}"\n'
        )
        settings = settings_for(tmp_path, store, wecom, extra)
        sync_wecom(store, settings, "corp", now=wecom.clock.now())
        report = sync_wechat(store, settings, "oa")
    assert report.customers_created < report.new  # followers found by the unionid a contact brought
    with store.connect() as conn:
        both = conn.execute(
            sa.text(
                "SELECT count(DISTINCT a.customer_id) FROM identity a "
                "JOIN identity b ON b.customer_id = a.customer_id "
                "JOIN customer c ON c.id = a.customer_id AND c.merged_into_id IS NULL "
                "WHERE a.kind = 'openid' AND b.kind = 'wecom_external'"
            )
        ).scalar_one()
        moved = conn.execute(
            sa.text(
                "SELECT count(*) FROM group_membership m JOIN customer c ON c.id = m.customer_id "
                "WHERE c.merged_into_id IS NOT NULL"
            )
        ).scalar_one()
    assert both > 50 and moved == 0  # memberships follow the merge


def test_groups_tie_their_members_in_the_graph(tmp_path: Path, store: Store, sim: WeComSimulator) -> None:
    sync_wecom(store, settings_for(tmp_path, store, sim), now=sim.clock.now())
    now = sim.clock.now()
    with store.connect() as conn:
        graph = load_graph(
            conn, now=now, half_life_days=1e9, kind_weights={"group_member": 0.2, "invited_to_group": 1.0}
        )
        stays = conn.execute(
            sa.text("SELECT group_id, customer_id, joined_at FROM group_membership WHERE left_at IS NULL")
        ).all()
        invites = conn.execute(
            sa.text("SELECT source_id, target_id FROM relation WHERE kind = 'invited_to_group'")
        ).all()
    # the reference, built pair by pair: cliques up to 9 members, else a ring of 4 each side in join order
    expected: dict[tuple[int, int], float] = {}
    groups: dict[int, list[tuple[datetime, int]]] = {}
    for g, c, j in stays:
        groups.setdefault(g, []).append((j, c))
    for members in groups.values():
        ring = [c for _, c in sorted(members)]
        n = len(ring)
        for i, a in enumerate(ring):
            partners = (
                [b for b in ring if b != a]
                if n <= 9
                else [ring[(i + d) % n] for d in (-4, -3, -2, -1, 1, 2, 3, 4)]
            )
            for b in partners:
                expected[(a, b)] = expected.get((a, b), 0.0) + 0.2 / n
    for s, t in invites:
        expected[(s, t)] = expected.get((s, t), 0.0) + 1.0
    ids = graph.customer_ids
    got = {
        (int(ids[s]), int(ids[d])): float(w)
        for s, d, w in zip(graph.src, graph.dst, graph.weight, strict=True)
    }
    assert got.keys() == expected.keys()
    assert np.allclose([got[k] for k in expected], list(expected.values()), rtol=1e-6)
    assert max(len(m) for m in groups.values()) > 9  # both cases were exercised


def test_cli_sync_wecom(tmp_path: Path, store: Store, sim: WeComSimulator) -> None:
    config = write_config(tmp_path / "config.toml", url_of(store), sim)
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(config), "sync", "wecom"])
    assert result.exit_code == 0, result.output
    assert "Account corp:" in result.output and "groups new" in result.output
    again = runner.invoke(cli, ["--config", str(config), "sync", "wecom", "--json"])
    assert again.exit_code == 0 and '"joined": 0' in again.output
    assert sim.secret not in result.output + again.output
    unknown = runner.invoke(cli, ["--config", str(config), "sync", "wecom", "--account", "nope"])
    assert unknown.exit_code == 1 and "no WeCom account 'nope'" in unknown.output


@pytest.fixture(scope="module")
def kill_population() -> WeComPopulation:
    return generate_wecom_population(4000, groups=1200, memberships=16000, staff=30, seed=23)


@pytest.fixture(scope="module")
def uninterrupted(
    kill_population: WeComPopulation, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("wecom_reference")
    with (
        WeComSimulator(kill_population, secret="corp-secret") as sim,
        closing(Store(f"sqlite:///{folder / 'reference.db'}")) as reference,
    ):
        reference.upgrade()
        sync_wecom(reference, load_settings(write_config(folder / "ref.toml", str(reference.url), sim)))
        return dump(reference)


@pytest.mark.parametrize(
    ("path", "seen"),
    [("/cgi-bin/externalcontact/batch/get_by_user", 12), ("/cgi-bin/externalcontact/groupchat/get", 900)],
    ids=["while-reading-contacts", "while-reading-groups"],
)
def test_a_sync_killed_mid_way_resumes_to_the_same_store(
    tmp_path: Path,
    database_url: str,
    path: str,
    seen: int,
    kill_population: WeComPopulation,
    uninterrupted: dict[str, Any],
) -> None:
    with WeComSimulator(kill_population, secret="corp-secret") as sim:
        config = write_config(tmp_path / "killed.toml", database_url, sim, batch_size=500, concurrency=2)
        with closing(Store(database_url)) as fresh:
            fresh.upgrade()
        command = [sys.executable, "-m", "scrm", "--config", str(config), "sync", "wecom", "--json"]
        log = tmp_path / "killed.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with log.open("wb") as err, subprocess.Popen(command, stdout=err, stderr=err, env=env) as child:
            deadline = time.monotonic() + 60
            while sum(r["path"] == path for r in sim.requests()) < seen:
                assert child.poll() is None, log.read_text()
                assert time.monotonic() < deadline
                time.sleep(0.002)
            child.send_signal(signal.SIGKILL)
        assert child.returncode == -signal.SIGKILL
        with closing(Store(database_url)) as killed, killed.connect() as conn:
            unfinished = conn.execute(
                sa.text(
                    "SELECT count(*) FROM sync_checkpoint WHERE finished_at IS NULL AND kind LIKE 'wecom_%'"
                )
            ).scalar_one()
            assert unfinished == 1  # it really stopped half-way
            state = conn.execute(
                sa.text("SELECT state FROM sync_checkpoint WHERE kind = 'wecom_groups'")
            ).scalar()
        since = len(sim.requests())
        with closing(Store(database_url)) as killed:
            resumed = sync_wecom(killed, load_settings(config), now=datetime.now(UTC))
            assert resumed.resumed
            assert dump(killed) == uninterrupted
        if "groupchat/get" in path:  # it went on from its checkpoint: the groups not yet stored, once
            saved = json.loads(state)
            committed = saved["done"] + (1000 if saved["cursor"] else 0)  # groupchat/list: 1,000 a page
            visible = int((kill_population.g_time <= sim.clock.timestamp()).sum())
            assert committed > 0
            assert sum(r["path"] == path for r in sim.requests(since)) == visible - committed


def test_the_demo_corp_meets_the_official_accounts_followers(tmp_path: Path, store: Store) -> None:
    from connectors.wecom_sim.demo import sync_demo_corp

    wechat = generate_population(followers=300, seed=6)
    with SimulatorServer(wechat, appid="wx00000000brand1", secret="s") as oa:
        config = tmp_path / "oa.toml"
        config.write_text(
            f'[database]\nurl = "{url_of(store)}"\n\n[accounts.oa]\nplatform = "wechat"\n'
            f'appid = "wx00000000brand1"\nsecret = "s"\napi_base = "{oa.base_url}"\n',
            encoding="utf-8",
        )
        settings = load_settings(config)
        sync_wechat(store, settings)
    report = sync_demo_corp(store, settings, wechat.unionids, contacts=500, seed=6)
    assert report.groups > 0 and report.joined > 0 and report.customers_created < report.contacts
    with store.connect() as conn:
        both = conn.execute(
            sa.text(
                "SELECT count(DISTINCT a.customer_id) FROM identity a "
                "JOIN identity b ON b.customer_id = a.customer_id "
                "WHERE a.kind = 'openid' AND b.kind = 'wecom_external'"
            )
        ).scalar_one()
    # most followers with a unionid are contacts too (not those who unfollowed, nor contacts of staff
    # without the customer-contact permission, added after the clock or deleted)
    assert len({u for u in wechat.unionids if u}) // 2 < both
