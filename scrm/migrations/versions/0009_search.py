"""search: substring indexes over customer names and identity values (trigrams)

Customer search (``scrm customers --search``, ``/api/v1/customers?q=``, the dashboard) matches a text
anywhere in a customer's name or in any of their keys. This revision indexes both by trigrams:

* SQLite: two FTS5 tables with the ``trigram`` tokenizer over the ``customer`` and ``identity`` tables
  (external content: they keep only the index, rowid = the row's id). New rows are indexed by the
  next search in one statement (``search_fts_state`` says how far each table is indexed); triggers
  keep rows already indexed in step when they change or are deleted. This relies on SQLite handing
  out new ids above the existing ones (no scrm writer inserts a customer or identity with an older
  id). When the SQLite library has no FTS5 trigram tokenizer (before 3.34) nothing is created and
  search scans.
* PostgreSQL: GIN indexes with ``pg_trgm`` on ``lower(display_name)`` and ``lower(value)``. The
  extension is created in the ``public`` schema when it is missing; when that is not allowed (no
  privilege, not installed) nothing is created and search scans, as before.

These objects are not on the models (alembic cannot describe them): see :data:`scrm.search.OBJECTS`.
A later migration that recreates ``customer`` or ``identity`` on SQLite (batch mode) must recreate
the triggers and rebuild the FTS tables.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

#: how far each FTS table has indexed its content table (SQLite)
_STATE = "search_fts_state"
#: FTS table -> (content table, column)
_FTS = {"customer_name_fts": ("customer", "display_name"), "identity_value_fts": ("identity", "value")}
_TRGM = {
    "ix_customer_name_trgm": ("customer", "display_name"),
    "ix_identity_value_trgm": ("identity", "value"),
}


def _sqlite_upgrade(conn: sa.Connection) -> None:
    try:
        conn.exec_driver_sql("CREATE VIRTUAL TABLE temp.scrm_probe USING fts5(x, tokenize='trigram')")
        conn.exec_driver_sql("DROP TABLE temp.scrm_probe")
    except sa.exc.OperationalError:
        log.warning("this SQLite has no FTS5 trigram tokenizer: customer search will scan")
        return
    conn.exec_driver_sql(
        f"CREATE TABLE {_STATE} (name VARCHAR(32) NOT NULL PRIMARY KEY, last_id INTEGER NOT NULL)"
    )
    for fts, (table, column) in _FTS.items():
        conn.exec_driver_sql(
            f"CREATE VIRTUAL TABLE {fts} USING fts5({column}, content='{table}', content_rowid='id', "
            "tokenize='trigram')"
        )
        indexed = f"(SELECT last_id FROM {_STATE} WHERE name = '{fts}')"
        top = f"(SELECT coalesce(max(id), 0) FROM {table})"
        add = f"INSERT INTO {fts}(rowid, {column}) VALUES (new.id, new.{column});"
        drop = f"INSERT INTO {fts}({fts}, rowid, {column}) VALUES ('delete', old.id, old.{column});"
        # No insert trigger: rows past last_id are indexed by the next search in one statement
        # (scrm.search.catch_up); an FTS5 insert from a per-row trigger costs ~10x the row's own
        # insert. Rows already indexed are kept in step here when they change or go; when the
        # newest rows go, last_id comes down with them, so that an id SQLite hands out again (the
        # largest + 1) is indexed too.
        conn.exec_driver_sql(
            f"CREATE TRIGGER {fts}_au AFTER UPDATE OF {column} ON {table} "
            f"WHEN old.id <= {indexed} BEGIN {drop} {add} END"
        )
        conn.exec_driver_sql(
            f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {table} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, {column}) SELECT 'delete', old.id, old.{column} "
            f"WHERE old.id <= {indexed}; "
            f"UPDATE {_STATE} SET last_id = {top} WHERE name = '{fts}' AND last_id > {top}; END"
        )
        conn.exec_driver_sql(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")
        conn.exec_driver_sql(
            f"INSERT INTO {_STATE} (name, last_id) SELECT '{fts}', coalesce(max(id), 0) FROM {table}"
        )


def _trgm_schema(conn: sa.Connection) -> str | None:
    """The schema holding pg_trgm, creating the extension in ``public`` if it is missing."""
    find = (
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_trgm'"
    )
    schema = conn.exec_driver_sql(find).scalar()
    if schema is None:
        try:
            with conn.begin_nested():
                conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
        except sa.exc.DBAPIError as error:
            log.warning("no pg_trgm (%s): customer search will scan", str(error.orig).splitlines()[0])
            return None
        schema = conn.exec_driver_sql(find).scalar()
    return str(schema) if schema is not None else None


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        _sqlite_upgrade(conn)
        return
    schema = _trgm_schema(conn)
    if schema is None:
        return
    for index, (table, column) in _TRGM.items():
        ops = f'"{schema}".gin_trgm_ops'
        conn.exec_driver_sql(f"CREATE INDEX {index} ON {table} USING gin (lower({column}) {ops})")


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        for fts in _FTS:
            for suffix in ("ad", "au"):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {fts}_{suffix}")
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {fts}")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_STATE}")
        return
    for index in _TRGM:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")
