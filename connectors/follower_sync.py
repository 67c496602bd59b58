"""Follower sync: pull an account's followers, profiles, tags and share reads into the store.

:func:`sync_wechat` runs one sync of a configured WeChat account; :func:`sync_followers` does the work
for any :class:`~connectors.base.Connector`. A run goes through these phases, each idempotent:

1. **tags**: the account's platform tags mirrored into ``tag``;
2. **list**: follower ids page by page (``user/get``), profiles 100 at a time with several requests in
   flight, written ``[sync] batch_size`` followers per transaction together with the checkpoint
   (page cursor and position in the page);
3. **close**: the open follow period of everyone no longer in the list is closed at the run's sync
   time (history is kept: the row stays, with ``unsubscribed_at``);
4. **shares**: reads through tracked share links since the stored cursor, as interactions.

The checkpoint (``sync_checkpoint``, kind ``followers``) is written in the same transaction as the
rows it covers, so a sync killed at any point (even ``kill -9``) resumes where it stopped: it re-reads
the ids of the pages already done (the close phase needs the whole list), skips the followers already
written and ends with exactly the store an uninterrupted sync would have made. A second sync with
nothing new writes nothing (its report says 0 new, 0 updated).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from connectors.base import Connector
from connectors.follower_reads import PageEnd, pages_before, read_batches, read_interactions, use_child
from connectors.follower_writes import (
    AccountRef,
    BatchResult,
    close_follows,
    mirror_tags,
    write_profiles,
    write_share_reads,
)
from connectors.sync_state import Checkpoint as _Checkpoint
from connectors.sync_state import bulk_settings as _bulk_settings
from connectors.sync_state import fewer_collections as _fewer_collections
from connectors.wechat import WeChatConnector
from scrm.config import Settings
from scrm.errors import ScrmError
from scrm.identity import Merge
from scrm.key_cache import KeyCache
from scrm.models import IdentityKind, utcnow
from scrm.store import Store
from scrm.sync_accounts import sync_accounts

__all__ = ["Progress", "SyncReport", "sync_followers", "sync_wechat"]

#: progress(followers done, followers in the list)
Progress = Callable[[int, int], None]
FOLLOWERS, SHARES = "followers", "share_reads"


@dataclass
class SyncReport:
    """What one sync did (a resumed run counts what it did after resuming)."""

    account: str
    followers: int = 0
    new: int = 0
    updated: int = 0
    unsubscribed: int = 0
    resubscribed: int = 0
    customers_created: int = 0
    merges: list[Merge] = field(default_factory=list)
    referrals: int = 0
    tags: int = 0
    tags_added: int = 0
    tags_removed: int = 0
    share_reads: int = 0
    resumed: bool = False
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, batch: BatchResult) -> None:
        self.new += batch.new
        self.updated += batch.updated
        self.resubscribed += batch.resubscribed
        self.customers_created += batch.customers_created
        self.merges.extend(batch.merges)
        self.referrals += batch.referrals
        self.tags_added += batch.tags_added
        self.tags_removed += batch.tags_removed

    def rows_written(self) -> int:
        """Rows this run added or changed (about: an identity or two per new customer count as one)."""
        return (
            self.new
            + self.updated
            + self.resubscribed
            + self.unsubscribed
            + self.customers_created
            + len(self.merges)
            + self.referrals
            + self.tags_added
            + self.tags_removed
            + self.share_reads
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["merged"] = len(self.merges)
        data["merges"] = [
            {"kept": m.kept_id, "merged": m.merged_id, "key": str(m.key), "reason": m.reason}
            for m in self.merges
        ]
        return data


def sync_wechat(
    store: Store,
    settings: Settings,
    account_name: str | None = None,
    progress: Progress | None = None,
    *,
    now: datetime | None = None,
    report: SyncReport | None = None,
) -> SyncReport:
    """Sync the followers of a configured WeChat account (the only one when ``account_name`` is None).

    ``now`` is the sync time recorded on follow periods closed by this run (default: the clock).
    Raises :class:`~scrm.errors.ConnectorError` (and subclasses) when WeChat refuses, after the
    bounded retries; what was written until then is kept and the next sync resumes from it. A
    ``report`` passed in is filled as the sync goes, so it tells what was done (and, in
    ``errors``, what stopped it) even when the sync raises.
    """
    store.check_schema()
    name, connector = WeChatConnector.from_settings(settings, account_name)
    account_ids = sync_accounts(store, settings)
    ref = AccountRef(account_ids[name], connector.account.appid, connector.platform, "sync:wechat")
    with connector:
        return sync_followers(
            store,
            connector,
            ref,
            name=name,
            batch_size=settings.sync.batch_size,
            reader_process={"auto": None, "always": True, "never": False}[settings.sync.reader_process],
            progress=progress,
            now=now,
            report=report,
        )


def sync_followers(
    store: Store,
    connector: Connector,
    account: AccountRef,
    *,
    name: str = "",
    batch_size: int = 2_000,
    reader_process: bool | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
    report: SyncReport | None = None,
) -> SyncReport:
    """Sync one account through ``connector``; see the module docstring for the phases.

    ``reader_process``: read profiles in a child process (True), in a thread (False), or (None)
    in a child process when it pays (see :func:`connectors.follower_reads.read_batches`).
    """
    started = time.perf_counter()
    report = report if report is not None else SyncReport(account=name)
    report.account = name
    try:
        _sync(store, connector, account, batch_size, reader_process, progress, now, report)
    except ScrmError as exc:
        report.errors.append(str(exc))
        raise
    finally:
        report.seconds = time.perf_counter() - started
    return report


def _sync(
    store: Store,
    connector: Connector,
    account: AccountRef,
    batch_size: int,
    process: bool | None,
    progress: Progress | None,
    now: datetime | None,
    report: SyncReport,
) -> None:
    with _fewer_collections(), store.bulk() as conn, _bulk_settings(conn):
        with conn.begin():
            checkpoint = _Checkpoint(conn, account.id, FOLLOWERS)
            state = checkpoint.state
            if checkpoint.finished or not state.get("phase"):
                state.clear()
                state.update(
                    phase="list", sync_time=(now or utcnow()).isoformat(), cursor=None, done=0, gone=[]
                )
                checkpoint.save(conn, started=True)
            else:
                report.resumed = True
        sync_time = datetime.fromisoformat(state["sync_time"])
        with conn.begin():
            tag_ids = mirror_tags(conn, account, connector.tags())
            # SQLite: the account's keys in memory (and those of groups still empty): no probe per key
            cache = KeyCache.start(
                conn, (IdentityKind.OPENID.value, account.scope), [(IdentityKind.UNIONID.value, "")]
            )
        report.tags = len(tag_ids)
        present: set[str] = set()
        if state["phase"] == "list":
            _list(
                store,
                conn,
                connector,
                account,
                checkpoint,
                tag_ids,
                cache,
                present,
                batch_size,
                process,
                progress,
                report,
            )
        if state["phase"] == "close":
            if not present:  # resumed after the list was done: read it again
                present = {i for page in connector.followers() for i in page.ids}
            with conn.begin():
                present.difference_update(state["gone"])
                report.unsubscribed = close_follows(conn, account, present, sync_time, cache)
                state["phase"] = "shares"
                checkpoint.save(conn)
        if state["phase"] == "shares":
            # a child process reads them too when the list (read in this run) was long enough
            in_child = use_child(process, len(present) / batch_size)
            report.share_reads = _pull_shares(conn, connector, account, cache, in_child)
            with conn.begin():
                state["phase"] = "done"
                checkpoint.save(conn, finished=True)
    if report.resumed or report.rows_written():  # statistics of a store that changed (PostgreSQL)
        store.analyze("identity", "customer", "follow", "customer_tag", "interaction")


def _list(
    store: Store,
    conn: Connection,
    connector: Connector,
    account: AccountRef,
    checkpoint: _Checkpoint,
    tag_ids: dict[int, int],
    cache: KeyCache | None,
    present: set[str],
    batch_size: int,
    process: bool | None,
    progress: Progress | None,
    report: SyncReport,
) -> None:
    state = checkpoint.state
    cursor: str | None = state["cursor"]
    skip: int = state["done"]
    if cursor is not None:
        for ids in pages_before(connector, cursor):
            present.update(ids)
    done = len(present) + skip
    analyzed_at = 1_000
    for item in read_batches(connector, cursor, skip, batch_size, process=process):
        if isinstance(item, PageEnd):
            present.update(item.ids)
            with conn.begin():
                state["cursor"], state["done"] = item.next_cursor, 0
                if item.next_cursor is None:
                    state["phase"] = "close"
                checkpoint.save(conn)
            continue
        gone = [p.openid for p in item.profiles if not p.subscribed]
        with conn.begin():
            report.add(write_profiles(conn, account, item.profiles, tag_ids, cache))
            state["cursor"], state["done"] = item.cursor, item.end
            state["gone"].extend(gone)
            checkpoint.save(conn)
        report.followers += len(item.ids) - len(gone)
        done += len(item.ids)
        if progress is not None:
            progress(done, max(item.total, done))
        written = report.rows_written()
        if written >= 2 * analyzed_at:  # keep the planner's statistics up with the growing tables
            analyzed_at = written
            store.analyze("identity", "customer", "follow", "customer_tag")
    if state["phase"] != "close":  # the platform ended the list without a last page
        with conn.begin():
            state["phase"] = "close"
            checkpoint.save(conn)


def _pull_shares(
    conn: Connection, connector: Connector, account: AccountRef, cache: KeyCache | None, process: bool
) -> int:
    """Pull interactions after the stored cursor; the cursor is saved with each page's rows."""
    with conn.begin():
        checkpoint = _Checkpoint(conn, account.id, SHARES)
    cursor = str(checkpoint.state.get("cursor", ""))
    added = 0
    for page in read_interactions(connector, cursor, process=process):
        with conn.begin():
            added += write_share_reads(conn, account, page.items, cache)
            checkpoint.state["cursor"] = page.next_cursor
            checkpoint.save(conn, finished=not page.has_more)
    return added
