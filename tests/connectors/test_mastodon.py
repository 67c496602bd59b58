"""The Mastodon simulator, its connector (Mastodon.py) and ``scrm sync mastodon`` on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from pydantic import SecretStr

from connectors.mastodon import MastodonConnector
from connectors.mastodon_sim import MastodonSimServer, SimPopulation, generate_population
from connectors.mastodon_sync import sync_mastodon
from graph.build import load_graph
from scrm.cli import cli
from scrm.config import MastodonAccount, SyncSettings, load_settings
from scrm.errors import ConnectorError, RateLimited, TokenRejected
from scrm.identity import resolve
from scrm.models import Customer, Follow, Identity, Interaction, SyncCheckpoint
from scrm.store import Store

DOMAIN = "social.example"


def expected_interactions(pop: SimPopulation, until: datetime) -> Counter[str]:
    """Reference count by kind, straight from the generated statuses."""
    by_id = {s.id: s for s in pop.statuses}
    kinds: Counter[str] = Counter()
    for s in pop.statuses:
        if s.created_at > until:
            continue
        if s.reblog_of:
            kinds["boost"] += by_id[s.reblog_of].account_id != s.account_id
            continue
        replied = s.in_reply_to_account_id if s.in_reply_to_account_id != s.account_id else None
        kinds["reply"] += replied is not None
        kinds["mention"] += sum(m not in (s.account_id, replied) for m in s.mentions)
    return kinds


@pytest.fixture(scope="module")
def population() -> SimPopulation:
    return generate_population(230, statuses=500, seed=5)


@pytest.fixture
def sim(population: SimPopulation) -> Iterator[MastodonSimServer]:
    middle = population.statuses[250].created_at
    with MastodonSimServer(generate_population(230, statuses=500, seed=5), at=middle) as server:
        yield server


def account(sim: MastodonSimServer, token: str | None = None) -> MastodonAccount:
    return MastodonAccount(
        platform="mastodon",
        api_base_url=sim.base_url,
        access_token=SecretStr(token or sim.token),
        handle=f"brand@{DOMAIN}",
    )


def test_followers_page_on_link_headers_and_errors_map_to_ours(sim: MastodonSimServer) -> None:
    pop = sim.state.population
    with MastodonConnector(account(sim), SyncSettings(backoff_seconds=0.01)) as mastodon:
        pages = list(mastodon.follower_accounts())
        assert [len(p) for p, _ in pages] == [80, 80, len(pop.follows) - 160]
        assert [p.id for page, _ in pages for p in page] == [a for _, a in reversed(pop.follows)]
        calls = [r for r in sim.requests() if r["path"].endswith("/followers")]
        assert [c["query"] for c in calls][1] == f"max_id={pages[0][1]}&limit=80"
        sim.fail_next(2)  # two 503s are retried
        assert len(list(mastodon.posts())) > 0
    with MastodonConnector(
        account(sim), SyncSettings(backoff_seconds=0.01, rate_limit_retries=1)
    ) as mastodon:
        sim.fail_next(5)
        with pytest.raises(ConnectorError, match="failed 2 times"):
            mastodon.brand()
    with pytest.raises(TokenRejected), MastodonConnector(account(sim, "wrong")) as mastodon:
        mastodon.brand()


def test_rate_limits_wait_for_the_reset_then_give_up(population: SimPopulation) -> None:
    with MastodonSimServer(population, rate_limit=2, rate_window=1.0) as sim:
        started = time.monotonic()
        with MastodonConnector(account(sim)) as mastodon:  # 4 calls, 2 allowed a second
            assert sum(len(p) for p, _ in mastodon.follower_accounts()) == len(population.follows)
        assert time.monotonic() - started >= 0.9  # it waited for the window's reset
        sim.state.rate_window = 60.0
        no_retry = SyncSettings(rate_limit_retries=0)
        with MastodonConnector(account(sim), no_retry) as mastodon, pytest.raises(RateLimited):
            for _ in range(4):
                next(mastodon.accounts(["1000"]))


def write_config(tmp_path: Path, database_url: str, sim: MastodonSimServer) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[database]
url = "{database_url}"

[sync]
backoff_seconds = 0.01

[accounts.fedi]
platform = "mastodon"
api_base_url = "{sim.base_url}"
access_token = "{sim.token}"
handle = "brand@{DOMAIN}"
""",
        encoding="utf-8",
    )
    return path


def stored(store: Store) -> tuple[Counter[str], int, int, set[str]]:
    with store.connect() as conn:
        x, f, i = Interaction.__table__.c, Follow.__table__.c, Identity.__table__.c  # type: ignore[attr-defined]
        kinds = Counter(dict(conn.execute(sa.select(x.kind, sa.func.count()).group_by(x.kind)).all()))
        open_follows = conn.execute(
            sa.select(sa.func.count()).where(f.unsubscribed_at.is_(None))
        ).scalar_one()
        closed = conn.execute(sa.select(sa.func.count()).where(f.unsubscribed_at.is_not(None))).scalar_one()
        handles = set(conn.execute(sa.select(i.value).where(i.kind == "mastodon")).scalars())
    return kinds, open_follows, closed, handles


def test_sync_stores_followers_and_interactions_idempotently_and_resumes(
    sim: MastodonSimServer, tmp_path: Path, database_url: str
) -> None:
    pop = sim.state.population
    config = write_config(tmp_path, database_url, sim)
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(config), "init"]).exit_code == 0
    settings = load_settings(config)
    store = Store(database_url)
    try:
        # a customer known from an order import by the email one follower shows verified: merged
        emails = [
            a for a in pop.accounts.values() if a.follows_brand and a.fields and a.fields[0][0] == "Email"
        ]
        verified = emails[0]
        email = verified.fields[0][1]
        with store.connect() as conn:
            known = resolve(conn, [[("email", "", email)]], source="import:shop").customer_ids[0]

        # killed after the first page of followers, then resumed
        def stop(done: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            sync_mastodon(store, settings, progress=stop)
        result = runner.invoke(cli, ["--config", str(config), "sync", "mastodon", "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["resumed"] and report["followers"] == len(pop.follows)
        kinds, open_follows, closed, handles = stored(store)
        assert kinds == expected_interactions(pop, sim.clock.now())
        assert open_follows == len(pop.follows) and closed == 0
        with store.connect() as conn:
            i = Identity.__table__.c  # type: ignore[attr-defined]
            owner = conn.execute(
                sa.select(i.customer_id).where(
                    i.kind == "mastodon", i.value == f"{verified.username}@{DOMAIN}"
                )
            ).scalar_one()
            weak = conn.execute(sa.select(sa.func.count()).where(i.kind == "phone_unverified")).scalar_one()
        assert owner == known and report["merges"] == []  # the key met on the new identity: no merge needed
        assert weak == sum(
            1 for a in pop.accounts.values() if a.follows_brand and a.fields and a.fields[0][0] == "Phone"
        )

        # nothing new: nothing written
        again = sync_mastodon(store, settings)
        assert (again.customers_created, again.follows_opened, again.interactions_added) == (0, 0, 0)
        assert not again.resumed

        # time passes: new posts, one follower leaves
        gone = pop.follows[0][1]
        sim.unfollow(gone)
        sim.clock.set(pop.now)
        later = sync_mastodon(store, settings)
        kinds, open_follows, closed, handles = stored(store)
        assert kinds == expected_interactions(pop, pop.now) and later.interactions_added > 0
        assert (open_follows, closed, later.follows_closed) == (len(pop.follows), 1, 1)
        assert f"{pop.accounts[gone].username}@{DOMAIN}" in handles
        # someone who does not follow the brand but posted: a customer under the name they post as
        outsider = next(
            pop.accounts[s.account_id] for s in pop.statuses if not pop.accounts[s.account_id].follows_brand
        )
        with store.connect() as conn:
            i, c = Identity.__table__.c, Customer.__table__.c  # type: ignore[attr-defined]
            name = conn.execute(
                sa.select(c.display_name)
                .join_from(Customer.__table__, Identity.__table__, i.customer_id == c.id)  # type: ignore[attr-defined]
                .where(i.kind == "mastodon", i.value == f"{outsider.username}@{DOMAIN}")
            ).scalar_one()
        assert name == outsider.display_name

        with store.connect() as conn:
            checkpoints = conn.execute(
                sa.select(SyncCheckpoint.__table__.c.kind, SyncCheckpoint.__table__.c.finished_at)  # type: ignore[attr-defined]
            ).all()
            assert {k for k, at in checkpoints if at is not None} == {"mastodon_followers", "mastodon_posts"}
            graph = load_graph(conn, now=pop.now, half_life_days=90, kind_weights={"boost": 1.0})
            x = Interaction.__table__.c  # type: ignore[attr-defined]
            pairs = conn.execute(
                sa.select(x.customer_id, x.target_customer_id).where(x.kind == "boost").distinct()
            ).all()
        assert graph.n_edges == len(pairs) > 0
    finally:
        store.close()


def test_time_and_ids_of_stored_interactions(sim: MastodonSimServer) -> None:
    with MastodonConnector(account(sim)) as mastodon:
        items = [i for page in mastodon.posts() for i in page.items]
    assert len({i.id for i in items}) == len(items)
    assert all(i.time.tzinfo is not None and i.time <= sim.clock.now() + timedelta(seconds=1) for i in items)
    assert all(i.time.utcoffset() == UTC.utcoffset(None) for i in items)
