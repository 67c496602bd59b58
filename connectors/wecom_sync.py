"""WeCom sync: pull a corp's external contacts, customer groups and contact events into the store.

:func:`sync_wecom` runs one sync of a configured WeCom account; :func:`sync_corp` does the work for
any :class:`~connectors.base.GroupConnector`. Three phases, each with its own checkpoint row
(``sync_checkpoint`` kinds ``wecom_contacts``, ``wecom_groups``, ``wecom_events``) written in the same
transaction as the rows it covers:

1. **contacts**: every permitted staff member's external contacts (``batch/get_by_user``, 100 staff a
   call, 100 contacts a page), ``[sync] batch_size`` contacts a transaction; the checkpoint is the
   paging cursor;
2. **groups**: group ids page by page (``groupchat/list``), their details with several requests in
   flight (``groupchat/get``), 200 groups a transaction; the checkpoint is the page's cursor and the
   position in it, and the run's sync time (when stays of members who left are closed);
3. **events**: contact deletions from the events feed after the stored cursor.

A sync killed at any point (even ``kill -9``) resumes at its checkpoints and ends with the store an
uninterrupted sync would have made; a second sync with nothing new writes nothing. See
:mod:`connectors.wecom_writes` for what is stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from connectors.base import ExternalContact, GroupConnector, GroupInfo
from connectors.follower_writes import AccountRef
from connectors.sync_state import Checkpoint, read_ahead, sqlite_page_cache
from connectors.wecom import WeComConnector
from connectors.wecom_writes import (
    ContactsResult,
    GroupsResult,
    write_contact_events,
    write_contacts,
    write_groups,
)
from scrm.config import Settings
from scrm.identity import Merge
from scrm.key_cache import KeyCache
from scrm.models import IdentityKind, utcnow
from scrm.store import PlannerStatistics, Store
from scrm.sync_accounts import sync_accounts

__all__ = ["CONTACTS", "EVENTS", "GROUPS", "WeComSyncReport", "sync_corp", "sync_wecom"]

CONTACTS, GROUPS, EVENTS = "wecom_contacts", "wecom_groups", "wecom_events"
#: progress(groups done, groups listed so far)
Progress = Callable[[int, int], None]
_TABLES = ("identity", "customer", "staff_contact", "customer_group", "group_membership", "relation")


@dataclass
class WeComSyncReport:
    """What one sync did (a resumed run counts what it did after resuming)."""

    account: str
    contacts: int = 0
    staff_contacts: int = 0
    groups: int = 0
    groups_new: int = 0
    joined: int = 0
    left: int = 0
    invitations: int = 0
    events: int = 0
    customers_created: int = 0
    merges: list[Merge] = field(default_factory=list)
    resumed: bool = False
    seconds: float = 0.0

    def add(self, batch: ContactsResult | GroupsResult) -> None:
        self.customers_created += batch.customers_created
        self.merges.extend(batch.merges)
        if isinstance(batch, ContactsResult):
            self.staff_contacts += batch.staff_contacts
            return
        self.groups_new += batch.groups_new
        self.joined += batch.joined
        self.left += batch.left
        self.invitations += batch.invitations

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["merged"] = len(self.merges)
        data["merges"] = [
            {"kept": m.kept_id, "merged": m.merged_id, "key": str(m.key), "reason": m.reason}
            for m in self.merges
        ]
        return data


def sync_wecom(
    store: Store,
    settings: Settings,
    account_name: str | None = None,
    progress: Progress | None = None,
    *,
    now: datetime | None = None,
) -> WeComSyncReport:
    """Sync a configured WeCom account (the only one when ``account_name`` is None).

    ``now`` is the sync time recorded on group stays closed by this run (default: the clock). Raises
    :class:`~scrm.errors.ConnectorError` (and subclasses) when WeCom refuses after the bounded
    retries; what was written until then is kept and the next sync resumes from it.
    """
    store.check_schema()
    name, connector = WeComConnector.from_settings(settings, account_name)
    account_ids = sync_accounts(store, settings)
    ref = AccountRef(account_ids[name], connector.account.corpid, connector.platform, "sync:wecom")
    with connector:
        return sync_corp(
            store, connector, ref, name=name, batch_size=settings.sync.batch_size, progress=progress, now=now
        )


def sync_corp(
    store: Store,
    connector: GroupConnector,
    account: AccountRef,
    *,
    name: str = "",
    batch_size: int = 2_000,
    group_batch: int = 200,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> WeComSyncReport:
    """Sync one corp through ``connector``; see the module docstring for the phases."""
    started = time.perf_counter()
    report = WeComSyncReport(account=name)
    with store.bulk() as conn, sqlite_page_cache(conn):
        statistics = PlannerStatistics(store, *_TABLES)
        with conn.begin():  # SQLite: the corp's keys in memory (and unionids if none yet): no probe per key
            cache = KeyCache.start(
                conn, (IdentityKind.WECOM_EXTERNAL.value, account.scope), [(IdentityKind.UNIONID.value, "")]
            )
        _contacts(conn, connector, account, batch_size, report, statistics, cache)
        _groups(conn, connector, account, group_batch, now, progress, report, statistics, cache)
        _events(conn, connector, account, report, cache)
    store.analyze(*_TABLES)
    report.seconds = time.perf_counter() - started
    return report


def _begin(
    conn: Connection, account: AccountRef, kind: str, fresh: dict[str, Any], report: WeComSyncReport
) -> Checkpoint:
    """The phase's checkpoint: a new run's (``fresh`` state) unless an unfinished one is there."""
    with conn.begin():
        checkpoint = Checkpoint(conn, account.id, kind)
        if checkpoint.finished or not checkpoint.state:
            checkpoint.state.clear()
            checkpoint.state.update(fresh)
            checkpoint.save(conn, started=True)
        else:
            report.resumed = True
    return checkpoint


def _contacts(
    conn: Connection,
    connector: GroupConnector,
    account: AccountRef,
    batch_size: int,
    report: WeComSyncReport,
    statistics: PlannerStatistics,
    cache: KeyCache | None,
) -> None:
    checkpoint = _begin(conn, account, CONTACTS, {"cursor": None}, report)
    pending: list[ExternalContact] = []
    for page in read_ahead(connector.contacts(checkpoint.state["cursor"])):
        pending.extend(page.contacts)
        if len(pending) < batch_size and page.next_cursor is not None:
            continue
        with conn.begin():
            report.add(write_contacts(conn, account, pending, cache))
            checkpoint.state["cursor"] = page.next_cursor
            checkpoint.save(conn, finished=page.next_cursor is None)
        report.contacts += len(pending)
        statistics.grew(len(pending))
        pending = []


@dataclass(frozen=True)
class _Groups:
    """Details of the groups of the page starting at ``cursor``, up to position ``end`` in it."""

    cursor: str | None
    end: int
    infos: list[GroupInfo]
    next_cursor: str | None
    last_of_page: bool


def _read_groups(connector: GroupConnector, cursor: str | None, skip: int, batch: int) -> Iterator[_Groups]:
    for page in connector.groups(cursor):
        ids = page.ids
        if skip >= len(ids):
            yield _Groups(cursor, len(ids), [], page.next_cursor, True)
        for start in range(skip, len(ids), batch):
            chunk = ids[start : start + batch]
            infos = [g for part in connector.group_details(chunk) for g in part]
            end = start + len(chunk)
            yield _Groups(cursor, end, infos, page.next_cursor, end >= len(ids))
        skip = 0
        cursor = page.next_cursor


def _groups(
    conn: Connection,
    connector: GroupConnector,
    account: AccountRef,
    batch: int,
    now: datetime | None,
    progress: Progress | None,
    report: WeComSyncReport,
    statistics: PlannerStatistics,
    cache: KeyCache | None,
) -> None:
    fresh = {"sync_time": (now or utcnow()).isoformat(), "cursor": None, "done": 0}
    checkpoint = _begin(conn, account, GROUPS, fresh, report)
    state = checkpoint.state
    sync_time = datetime.fromisoformat(state["sync_time"])
    staff = set(connector.staff())
    done = 0
    for item in read_ahead(_read_groups(connector, state["cursor"], state["done"], batch)):
        with conn.begin():
            report.add(write_groups(conn, account, item.infos, staff, sync_time, cache))
            if item.last_of_page:
                state["cursor"], state["done"] = item.next_cursor, 0
            else:
                state["cursor"], state["done"] = item.cursor, item.end
            checkpoint.save(conn, finished=item.last_of_page and item.next_cursor is None)
        report.groups += len(item.infos)
        statistics.grew(sum(len(g.members) for g in item.infos))
        done += len(item.infos)
        if progress is not None:
            progress(done, done)
    if not checkpoint.finished:  # the platform ended the list without a last page
        with conn.begin():
            checkpoint.save(conn, finished=True)


def _events(
    conn: Connection,
    connector: GroupConnector,
    account: AccountRef,
    report: WeComSyncReport,
    cache: KeyCache | None,
) -> None:
    with conn.begin():
        checkpoint = Checkpoint(conn, account.id, EVENTS)
    cursor = str(checkpoint.state.get("cursor", ""))
    for page in read_ahead(connector.contact_events(cursor)):
        with conn.begin():
            report.events += write_contact_events(conn, account, page.items, cache)
            checkpoint.state["cursor"] = page.next_cursor
            checkpoint.save(conn, finished=not page.has_more)
