"""The store: engine, sessions and schema migrations for SQLite (default) and PostgreSQL.

SQLite connections get WAL journaling, foreign keys and a busy timeout; PostgreSQL is used by giving a
``postgresql://`` URL (driven by psycopg 3). The schema is managed by Alembic migrations shipped inside
the package; :meth:`Store.upgrade` (``scrm init``) creates or upgrades it, and :meth:`Store.check_schema`
refuses to work on a schema that is older than the code.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from scrm.errors import SchemaOutOfDate, StoreError

__all__ = ["SQLITE_PRAGMAS", "PlannerStatistics", "Store", "redact_url"]

log = logging.getLogger(__name__)

_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]+@")


def redact_url(url: str) -> str:
    """Hide the password in a database URL.

    >>> redact_url("postgresql://scrm:s3cret@db:5432/scrm")
    'postgresql://scrm:***@db:5432/scrm'
    """
    return _PASSWORD.sub(r"\1***@", url)


def _normalise_url(url: str) -> str:
    # psycopg 3 is the PostgreSQL driver; plain postgresql:// would ask for psycopg2.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


#: what scrm sets on every SQLite connection (the benchmarks' floors set the same)
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
    "PRAGMA synchronous=NORMAL",
    # Statement journals (the undo record SQLite keeps for each multi-row INSERT inside a
    # transaction) and temporary sorts stay in memory: on disk, a 100,000-follower sync spent 15% of
    # its CPU writing statement journals to temporary files (measured with py-spy). They are small:
    # one statement's changed pages, or one query's sort.
    "PRAGMA temp_store=MEMORY",
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


class Store:
    """A database holding scrm's data.

    Parameters
    ----------
    url
        SQLAlchemy URL: ``sqlite:///path/to/scrm.db`` or ``postgresql://user@host/db``.
    echo
        Log every SQL statement (for debugging; parameters are bound, never inlined).
    connect_args
        Extra arguments for the driver's ``connect`` (tests use it to pick a PostgreSQL schema).
    """

    def __init__(self, url: str, *, echo: bool = False, connect_args: dict[str, Any] | None = None) -> None:
        self.url = _normalise_url(url)
        try:
            self.engine: Engine = sa.create_engine(self.url, echo=echo, connect_args=connect_args or {})
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise StoreError(f"database URL {redact_url(url)!r} is not usable: {exc}") from None
        if self.dialect == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def __repr__(self) -> str:
        return f"Store({redact_url(self.url)!r})"

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _clear_errors(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.OperationalError as exc:
            if exc.connection_invalidated or "connect" in str(exc.orig).lower():
                raise StoreError(
                    f"cannot reach the database {redact_url(self.url)}: {exc.orig}".strip()
                ) from None
            raise

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection in a transaction, committed on success, with connection errors made clear."""
        with self._clear_errors(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def bulk(self) -> Iterator[Connection]:
        """One connection for a bulk load; the caller opens a transaction per batch (``conn.begin()``).

        On SQLite, automatic WAL checkpoints are paused until the end, where one checkpoint copies
        each changed page once (instead of once per committed batch).
        """
        with self._clear_errors(), self.engine.connect() as conn:
            sqlite = self.dialect == "sqlite"
            if sqlite:
                conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
                conn.commit()
            try:
                yield conn
            finally:
                if sqlite:
                    if conn.in_transaction():
                        conn.rollback()
                    conn.exec_driver_sql("PRAGMA wal_autocheckpoint=1000")
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                    conn.commit()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """An ORM session in a transaction, committed on success and rolled back on error."""
        with self.connect() as conn, Session(bind=conn) as session:
            yield session
            session.flush()

    def analyze(self, *tables: str) -> None:
        """Refresh the planner's statistics of these tables (PostgreSQL; a no-op on SQLite).

        A bulk load into tables the planner still believes empty gets sequential scans for its
        lookups, which makes the load quadratic; callers refresh as the tables grow.
        """
        if self.dialect != "postgresql" or not tables:
            return
        names = ", ".join(self.engine.dialect.identifier_preparer.quote(t) for t in tables)
        with self.connect() as conn:
            conn.exec_driver_sql(f"ANALYZE {names}")

    # -- schema -----------------------------------------------------------------------------------

    def _alembic_config(self, conn: Connection) -> AlembicConfig:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(resources.files("scrm") / "migrations"))
        cfg.attributes["connection"] = conn
        return cfg

    def head_revision(self) -> str:
        with self.connect() as conn:
            head = ScriptDirectory.from_config(self._alembic_config(conn)).get_current_head()
        assert head is not None
        return head

    def current_revision(self) -> str | None:
        with self.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def upgrade(self, revision: str = "head") -> tuple[str | None, str]:
        """Create or upgrade the schema; return (revision before, revision after)."""
        with self.connect() as conn:
            before = MigrationContext.configure(conn).get_current_revision()
            command.upgrade(self._alembic_config(conn), revision)
            after = MigrationContext.configure(conn).get_current_revision()
        assert after is not None
        return before, after

    def check_schema(self) -> None:
        """Raise :class:`SchemaOutOfDate` unless the schema is at the code's head revision."""
        current, head = self.current_revision(), self.head_revision()
        if current is None:
            raise SchemaOutOfDate(
                f"the database {redact_url(self.url)} has no scrm schema yet: run `scrm init`"
            )
        if current != head:
            raise SchemaOutOfDate(
                f"the database schema is at revision {current}, this scrm needs {head}: "
                "run `scrm init` to upgrade it"
            )


class PlannerStatistics:
    """ANALYZE ``tables`` each time the rows written through this object have doubled (PostgreSQL).

    A table that fills from empty keeps the statistics of an empty table until autovacuum's next
    pass (a minute or more): meanwhile the planner takes a lookup by a unique key for a scan of the
    key's first columns, and every lookup reads the whole table. A bulk load, or a server writing
    into a new store, calls :meth:`grew` after each batch. ``background=True`` runs the ANALYZE in a
    thread of its own (one at a time), so that a request path never waits for it.
    """

    def __init__(self, store: Store, *tables: str, first: int = 1_000, background: bool = False) -> None:
        self.store, self.tables, self.background = store, tables, background
        self.rows, self.at = 0, first
        self._running = threading.Lock()

    def grew(self, rows: int) -> None:
        """Count ``rows`` more written; ANALYZE when the count has doubled since the last time."""
        self.rows += rows
        if self.store.dialect != "postgresql" or self.rows < 2 * self.at:
            return
        self.at = self.rows
        if not self.background:
            self.store.analyze(*self.tables)
        elif self._running.acquire(blocking=False):
            threading.Thread(target=self._analyze, name="scrm-analyze", daemon=True).start()

    def _analyze(self) -> None:
        try:
            self.store.analyze(*self.tables)
        except Exception:  # statistics are an optimisation: a failure must not stop the writer
            log.warning("ANALYZE %s failed", ", ".join(self.tables), exc_info=True)
        finally:
            self._running.release()
