"""Fixtures of the web tests: ``web_world``, a synced, scored and served store (see :mod:`tests.web.world`).

``web_world`` is built once per test module and backend (SQLite and PostgreSQL): tests that change it
(imports, tokens, campaigns) must not rely on what another test of the module did or did not change.
``fresh_web_world`` builds one per test, on the ``database_url`` fixture, for tests that need a world
nobody else touched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from connectors.wechat_sim import Population
from tests.conftest import _pg_conninfo, pg_store_url
from tests.web.world import WebWorld, build_world


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def web_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, wechat_population: Population
) -> Iterator[WebWorld]:
    """A world shared by the tests of one module, on each backend."""
    tmp = tmp_path_factory.mktemp("web_world")
    if request.param == "sqlite":
        with build_world(f"sqlite:///{tmp / 'scrm.db'}", tmp, wechat_population) as world:
            yield world
        return
    pg_url: str = request.getfixturevalue("pg_url")
    schema = f"scrm_web_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_pg_conninfo(pg_url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        with build_world(pg_store_url(pg_url, schema), tmp, wechat_population) as world:
            yield world
    finally:
        with psycopg.connect(_pg_conninfo(pg_url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def fresh_web_world(database_url: str, tmp_path: Path, wechat_population: Population) -> Iterator[WebWorld]:
    """A world of its own for one test, on each backend."""
    with build_world(database_url, tmp_path, wechat_population) as world:
        yield world
