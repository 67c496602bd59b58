"""Customer search: which customers a text matches, through the trigram indexes of migration 0009.

What matches (the same on SQLite and PostgreSQL):

* a text of **3 characters or more** matches a customer whose name or any key (phone, email, openid,
  unionid, WeCom id, Mastodon handle...) contains it anywhere, ignoring case: ``138001`` finds
  ``+8613800138000``, ``伟37`` finds ``王伟37``, ``example.com`` every key at that domain;
* a **shorter** text (one or two characters: a Chinese surname, ``王伟``) matches the start of a
  customer's name only, as typed, lower case or capitalised.

The indexes: SQLite FTS5 tables with the ``trigram`` tokenizer (``MATCH`` on a quoted phrase is a
substring match of 3 characters or more), PostgreSQL GIN ``pg_trgm`` indexes on ``lower(...)`` (which
``LIKE '%text%'`` uses). Where migration 0009 could not create them (an old SQLite, no ``pg_trgm``)
the same matches are found by scanning, as slowly as before.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from scrm.models import Customer, Identity

__all__ = ["MIN_SUBSTRING", "OBJECTS", "catch_up", "is_search_object", "matching_ids"]

customer_t = Customer.__table__  # type: ignore[attr-defined]
identity_t = Identity.__table__  # type: ignore[attr-defined]
#: the shortest text matched anywhere (a trigram); shorter ones match the start of names
MIN_SUBSTRING = 3
#: tables and indexes migration 0009 creates outside the models (FTS5 tables, pg_trgm indexes)
OBJECTS = (
    "customer_name_fts",
    "identity_value_fts",
    "search_fts_state",
    "ix_customer_name_trgm",
    "ix_identity_value_trgm",
)
#: SQLite: FTS table -> (content table, column), indexed up to ``search_fts_state.last_id``
_FTS = {"customer_name_fts": ("customer", "display_name"), "identity_value_fts": ("identity", "value")}
_LAST = "\U0010ffff"


def is_search_object(name: str | None) -> bool:
    """Whether ``name`` is one of :data:`OBJECTS` or an FTS5 shadow table of one (``..._data``)."""
    return bool(name) and any(name == o or (name or "").startswith(o + "_") for o in OBJECTS)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _has_fts(conn: sa.Connection) -> bool:
    found = conn.execute(
        sa.text("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'search_fts_state'")
    )
    return bool(found.scalar_one())


def catch_up(conn: sa.Connection) -> int:
    """SQLite: index the customers and identities added since the last search (one ``INSERT ...
    SELECT`` per FTS table, a few microseconds a row); returns how many rows were indexed. Nothing
    to do (the usual case) costs two reads and takes no write lock. A no-op on PostgreSQL."""
    if conn.dialect.name != "sqlite" or not _has_fts(conn):
        return 0
    added = 0
    for fts, (table, column) in _FTS.items():
        behind = sa.text(
            f"SELECT (SELECT coalesce(max(id), 0) FROM {table}) > "
            f"(SELECT last_id FROM search_fts_state WHERE name = '{fts}')"
        )
        if not conn.execute(behind).scalar():
            continue
        # in one write transaction (the INSERT takes the lock): what is past last_id, then last_id
        added += conn.execute(
            sa.text(
                f"INSERT INTO {fts}(rowid, {column}) SELECT id, {column} FROM {table} "
                f"WHERE id > (SELECT last_id FROM search_fts_state WHERE name = '{fts}')"
            )
        ).rowcount
        conn.execute(
            sa.text(f"UPDATE search_fts_state SET last_id = (SELECT max(id) FROM {table}) WHERE name = :n"),
            {"n": fts},
        )
    return added


def _name_starts(text: str) -> sa.ColumnElement[bool]:
    """Names starting with ``text`` as typed, in lower case or capitalised (btree ranges)."""
    name = customer_t.c.display_name
    variants = sorted({text, text.lower(), text[:1].upper() + text[1:]})
    return sa.or_(*(sa.and_(name >= v, name < v + _LAST) for v in variants))


def matching_ids(conn: sa.Connection, text: str) -> sa.Select[Any]:
    """A select of the ids of the customers ``text`` matches (see the module's docstring);
    merged customers are not left out here."""
    text = text.strip()
    c, i = customer_t.c, identity_t.c
    if len(text) < MIN_SUBSTRING:
        return sa.select(c.id).where(_name_starts(text))
    if conn.dialect.name == "sqlite" and _has_fts(conn):
        phrase = '"' + text.replace('"', '""') + '"'  # one FTS5 string: a substring of 3+ characters
        names = sa.text("SELECT rowid AS id FROM customer_name_fts WHERE customer_name_fts MATCH :names")
        keys = sa.text("SELECT rowid AS id FROM identity_value_fts WHERE identity_value_fts MATCH :keys")
        by_name = names.bindparams(names=phrase).columns(id=sa.Integer).subquery()
        by_key = keys.bindparams(keys=phrase).columns(id=sa.Integer).subquery()
        return sa.union(
            sa.select(by_name.c.id),
            sa.select(i.customer_id).where(i.id.in_(sa.select(by_key.c.id))),
        ).subquery().select()  # fmt: skip
    pattern = _like(text.lower())
    return sa.union(
        sa.select(c.id).where(sa.func.lower(c.display_name).like(pattern, escape="\\")),
        sa.select(i.customer_id).where(sa.func.lower(i.value).like(pattern, escape="\\")),
    ).subquery().select()  # fmt: skip
