"""Shared fixtures: a store on SQLite and on PostgreSQL (parametrised), settings and a CLI runner.

PostgreSQL comes from SCRM_TEST_DATABASE_URL (default: the server on this machine). Each test gets a
schema of its own, dropped afterwards. When no server answers the PostgreSQL cases are skipped with the
reason, unless SCRM_REQUIRE_POSTGRES=1 (set by .ci/run), which makes that a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from connectors.wechat_sim import Population, SimulatorServer, generate_population
from scrm.store import Store

PG_URL = os.environ.get("SCRM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("SCRM_REQUIRE_POSTGRES") == "1"


def _pg_conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="session")
def pg_url() -> str:
    try:
        psycopg.connect(_pg_conninfo(PG_URL), connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL at {PG_URL} does not answer ({str(exc).strip()[:200]})"
        if REQUIRE_PG:
            pytest.fail(f"{reason}; SCRM_REQUIRE_POSTGRES=1 requires it", pytrace=False)
        pytest.skip(reason)
    return PG_URL


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    name = f"scrm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_pg_conninfo(pg_url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(_pg_conninfo(pg_url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


def pg_store_url(pg_url: str, schema: str) -> str:
    """A URL whose connections use ``schema`` (libpq options), so CLI tests can use it too."""
    separator = "&" if "?" in pg_url else "?"
    return f"{pg_url}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no schema yet) on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'scrm.db'}"
    schema = request.getfixturevalue("pg_schema")
    return pg_store_url(request.getfixturevalue("pg_url"), schema)


@pytest.fixture
def empty_store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    yield store
    store.close()


@pytest.fixture
def store(empty_store: Store) -> Store:
    """A store with the schema at head, on SQLite and on PostgreSQL."""
    empty_store.upgrade()
    return empty_store


@pytest.fixture
def config_file(tmp_path: Path, database_url: str) -> Path:
    """A config.toml for the CLI, on the parametrised database, with one WeChat account."""
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[database]
url = "{database_url}"

[import]
batch_size = 100

[accounts.brand]
platform = "wechat"
appid = "wx00000000brand1"
secret = "s3cret-value-never-printed"
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="session")
def wechat_population() -> Population:
    """The simulator's population for tests: 300 followers, seed 7 (generated once per session)."""
    return generate_population(followers=300, seed=7)


@pytest.fixture
def wechat_sim(wechat_population: Population) -> Iterator[SimulatorServer]:
    """A running WeChat simulator (fresh state per test) with its clock at the end of the activity."""
    with SimulatorServer(wechat_population) as sim:
        yield sim
