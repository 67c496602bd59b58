"""A bulk load's memory of identity keys, so that each batch asks the store only about keys it cannot know.

A sync resolves the same keys again and again: a referrer's openid in many batches, every reader and
sharer of the share-reads feed (followers resolved minutes before). :class:`KeyCache` remembers the
customer of every key that :func:`scrm.identity.resolve` saw or created, and knows which ``(kind,
scope)`` groups it holds *completely* (every stored key of the group is in it): a key of such a group
that is not in the cache is not stored, so finding that out costs no query either. A first sync into an
empty account looks nothing up; a re-sync loads the account's keys in one query instead of one probe
per key.

The cache is only as good as the knowledge that nobody else wrote: SQLite's ``PRAGMA data_version``
changes when another connection commits, and then the cache forgets everything (and so does a merge
made by its own connection). Lookups are as fresh as without a cache: each batch checks the version
right before it would have queried. PostgreSQL has no such counter, so there :meth:`KeyCache.start`
gives None and every batch looks its keys up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy.engine import Connection

__all__ = ["MAX_KEYS", "KeyCache"]

#: keys a cache holds at most (~210 bytes each, measured); past it, it forgets and batches look up
#: as without it
MAX_KEYS = 1_000_000

KeyTuple = tuple[str, str, str]
Lookup = Callable[[Connection, Iterable[KeyTuple]], dict[KeyTuple, int]]


def _driver(conn: Connection) -> Any:
    return conn.connection.driver_connection


class KeyCache:
    """Identity keys → customer ids, valid while no other connection commits to the SQLite database."""

    def __init__(self, conn: Connection) -> None:
        self.ids: dict[KeyTuple, int] = {}
        self.complete: set[tuple[str, str]] = set()
        self._version = self._data_version(conn)

    @classmethod
    def start(
        cls, conn: Connection, full: tuple[str, str], empty: Iterable[tuple[str, str]] = ()
    ) -> KeyCache | None:
        """A cache holding every stored key of the ``full`` group and all keys of their customers.

        Each group of ``empty`` holding no key at all is marked complete as well. None on databases
        other than SQLite, and when the ``full`` group holds more than :data:`MAX_KEYS` keys.
        """
        if conn.dialect.name != "sqlite":
            return None
        cache = cls(conn)
        db = _driver(conn)
        count = db.execute("SELECT count(*) FROM identity WHERE kind = ? AND scope = ?", full).fetchone()[0]
        if count > MAX_KEYS:
            return None
        rows = db.execute(
            "SELECT kind, scope, value, customer_id FROM identity WHERE customer_id IN "
            "(SELECT customer_id FROM identity WHERE kind = ? AND scope = ?)",
            full,
        ).fetchall()
        cache.ids.update(((kind, scope, value), cid) for kind, scope, value, cid in rows)
        cache.complete.add(full)
        for group in empty:
            if (
                db.execute("SELECT 1 FROM identity WHERE kind = ? AND scope = ? LIMIT 1", group).fetchone()
                is None
            ):
                cache.complete.add(group)
        return cache

    @staticmethod
    def _data_version(conn: Connection) -> int:
        return int(_driver(conn).execute("PRAGMA data_version").fetchone()[0])

    def forget(self) -> None:
        self.ids.clear()
        self.complete.clear()

    def _check(self, conn: Connection) -> None:
        """Forget everything if another connection committed since the last check."""
        version = self._data_version(conn)
        if version != self._version:  # another connection committed: what it wrote is unknown here
            self._version = version
            self.forget()

    def group(self, conn: Connection, group: tuple[str, str]) -> dict[str, int] | None:
        """Every stored key of ``group`` as value -> customer id; None when the cache cannot tell
        (the group is not held completely, or another connection committed since)."""
        self._check(conn)
        if group not in self.complete:
            return None
        kind, scope = group
        return {key[2]: cid for key, cid in self.ids.items() if key[1] == scope and key[0] == kind}

    def known(self, conn: Connection, keys: Iterable[KeyTuple], lookup: Lookup) -> dict[KeyTuple, int]:
        """The customer id of each stored key of ``keys``; ``lookup`` asks the store about the rest."""
        self._check(conn)
        found: dict[KeyTuple, int] = {}
        ask: list[KeyTuple] = []
        ids, complete = self.ids, self.complete
        for key in keys:
            cid = ids.get(key)
            if cid is not None:
                found[key] = cid
            elif (key[0], key[1]) not in complete:
                ask.append(key)
        if ask:
            found.update(lookup(conn, ask))
        return found

    def learn(self, owners: Mapping[KeyTuple, int], *, merged: bool) -> None:
        """Remember the customer of each key a batch resolved (forget all after a merge: ids moved)."""
        if merged or len(self.ids) + len(owners) > MAX_KEYS:
            self.forget()
        else:
            self.ids.update(owners)
