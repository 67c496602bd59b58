"""The reading side of a follower sync: pages of ids and their profiles, batch by batch, and share reads.

:func:`read_batches` yields, from a page cursor on, each batch of profiles (:class:`Batch`) and the
end of each page (:class:`PageEnd`), running ahead of the writer in a thread; or, on a machine with a
second core and a connector that can copy itself (:meth:`~connectors.base.Connector.fresh_copy`), in a
child process (:mod:`connectors.child_reader`), where HTTP and JSON cost the writer no CPU.
:func:`read_interactions` does the same for the pages of share reads.

Between the processes records travel as plain tuples with times as integer timestamps: pickling
frozen dataclasses holding aware datetimes cost the child as much as the JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors import child_reader
from connectors.base import Connector, FollowerPage, FollowerProfile, InteractionPage, ShareRead
from connectors.sync_state import read_ahead

__all__ = [
    "CHILD_MIN_BATCHES",
    "Batch",
    "PageEnd",
    "pages_before",
    "read_batches",
    "read_interactions",
    "use_child",
]

#: with ``reader_process = "auto"``, a child process reads when at least this many batches are left
CHILD_MIN_BATCHES = 10
#: (openid, unionid, subscribed, subscribe time, scene, qr_scene_str, tag ids, remark); the time is a
#: POSIX timestamp when it is a whole second in UTC (WeChat's times), else the datetime itself
Wire = tuple[str, str | None, bool, int | datetime | None, str, str, tuple[int, ...], str]


@dataclass(frozen=True)
class Batch:
    """Profiles of ``ids``: the page starting at ``cursor``, up to position ``end`` in it."""

    cursor: str | None
    end: int
    ids: tuple[str, ...]
    profiles: list[FollowerProfile]
    total: int


@dataclass(frozen=True)
class PageEnd:
    ids: tuple[str, ...]
    next_cursor: str | None


def pages_before(connector: Connector, cursor: str) -> Iterator[tuple[str, ...]]:
    """Ids of the pages before the one starting at ``cursor`` (the whole list if it is not met)."""
    for page in connector.followers():
        yield page.ids
        if page.next_cursor == cursor or page.next_cursor is None:
            return


def use_child(process: bool | None, batches: float) -> bool:
    """Whether to read in a child process: ``process`` if given, else (auto) with ``batches`` left
    of at least :data:`CHILD_MIN_BATCHES`; never where none can run (:func:`child_reader.available`)."""
    if not child_reader.available():
        return False
    return batches >= CHILD_MIN_BATCHES if process is None else process


def _batches(
    connector: Connector, pages: Iterator[FollowerPage], cursor: str | None, skip: int, batch_size: int
) -> Iterator[Batch | PageEnd]:
    for page in pages:
        for start in range(skip, len(page.ids), batch_size):
            chunk = page.ids[start : start + batch_size]
            profiles = [p for batch in connector.profiles(chunk) for p in batch]
            yield Batch(cursor, start + len(chunk), chunk, profiles, page.total)
        skip = 0
        yield PageEnd(page.ids, page.next_cursor)
        cursor = page.next_cursor


def _then(first: FollowerPage, rest: Iterator[FollowerPage]) -> Iterator[FollowerPage]:
    yield first
    yield from rest


def read_batches(
    connector: Connector, cursor: str | None, skip: int, batch_size: int, *, process: bool | None = None
) -> Iterator[Batch | PageEnd]:
    """Batches of profiles from the page at ``cursor`` on (less ``skip`` ids of that page).

    ``process``: read in a child process (True), in a thread (False), or (None) in a child process
    when at least :data:`CHILD_MIN_BATCHES` batches are left (:func:`use_child`); a connector that
    cannot copy itself reads in a thread.
    """
    pages = connector.followers(cursor)
    first = next(pages, None)
    if first is None:
        return
    left = max(first.total, len(first.ids)) - skip
    copy = connector.fresh_copy() if use_child(process, left / batch_size) else None
    if copy is None:
        yield from read_ahead(_batches(connector, _then(first, pages), cursor, skip, batch_size))
        return

    def produce() -> Iterator[Any]:  # runs in the child
        with copy:
            rest = copy.followers(first.next_cursor) if first.next_cursor else iter(())
            for item in _batches(copy, _then(first, rest), cursor, skip, batch_size):
                yield _encode(item) if isinstance(item, Batch) else item

    for message in child_reader.in_child(produce):
        yield _decode(message) if isinstance(message, tuple) else message


def _encode(batch: Batch) -> tuple[Any, ...]:
    # Equal strings made one object (an openid of the list and of its profile, repeated scenes):
    # pickle then sends each once, and the writer unpickles fewer objects.
    shared = {i: i for i in batch.ids}
    share = shared.setdefault
    wire: list[Wire] = [
        (
            share(p.openid, p.openid),
            p.unionid,
            p.subscribed,
            _stamp(p.subscribe_time),
            share(p.scene, p.scene),
            share(p.qr_scene_str, p.qr_scene_str),
            p.tag_ids,
            share(p.remark, p.remark),
        )
        for p in batch.profiles
    ]
    return (batch.cursor, batch.end, batch.ids, wire, batch.total)


def _stamp(moment: datetime | None) -> int | datetime | None:
    if moment is None or moment.microsecond or moment.tzinfo is not UTC:
        return moment
    return int(moment.timestamp())


def _times(stamps: Iterable[int | datetime | None]) -> dict[Any, datetime]:
    """Wire time -> aware datetime, one object per distinct time (``dict.get(stamp, stamp)`` then
    gives the datetime of a timestamp and passes None and datetimes through)."""
    return {t: datetime.fromtimestamp(t, UTC) for t in set(stamps) if isinstance(t, int)}


def _decode(message: tuple[Any, ...]) -> Batch:
    cursor, end, ids, wire, total = message
    time = _times(w[3] for w in wire).get
    profiles = [
        FollowerProfile(openid, unionid, subscribed, time(stamp, stamp), scene, qr, tags, remark)
        for openid, unionid, subscribed, stamp, scene, qr, tags, remark in wire
    ]
    return Batch(cursor, end, ids, profiles, total)


def read_interactions(
    connector: Connector, cursor: str, *, process: bool | None = None
) -> Iterator[InteractionPage]:
    """Pages of share reads after ``cursor``, read ahead in a child process (``process``, where one
    can run and the connector can copy itself) or in a thread."""
    copy = connector.fresh_copy() if process and child_reader.available() else None
    if copy is None:
        yield from read_ahead(connector.interactions(cursor))
        return

    def produce() -> Iterator[Any]:  # runs in the child
        with copy:
            for page in copy.interactions(cursor):
                shared: dict[str, str] = {}  # each openid and article once per page (see _encode)
                share = shared.setdefault
                reads = [
                    (
                        r.id,
                        share(r.sharer, r.sharer),
                        share(r.reader, r.reader),
                        share(r.article, r.article),
                        _stamp(r.time),
                    )
                    for r in page.items
                ]
                yield reads, page.next_cursor, page.has_more

    for reads, next_cursor, has_more in child_reader.in_child(produce):
        time = _times(r[4] for r in reads).get
        items = tuple(
            ShareRead(id_, sharer, reader, article, time(stamp, stamp))
            for id_, sharer, reader, article, stamp in reads
        )
        yield InteractionPage(items, next_cursor, has_more)
