"""``scrm sync mastodon``: the brand's Mastodon followers and the interactions between people, stored.

Two phases, each resumable through its own ``sync_checkpoint`` row:

1. **followers** (kind ``mastodon_followers``): the followers list page by page; each page in one
   transaction with the checkpoint (the run's start time, the page cursor, pages done). Each follower
   is a customer keyed by a ``mastodon`` identity (``user@domain``, scope the instance's domain), plus
   ``email``/``phone`` keys from *verified* profile fields (these merge customers, as
   :mod:`scrm.identity` does for every strong key) and ``email_unverified``/``phone_unverified`` ones
   from the others (kept, scope the handle; they only feed ``scrm merges suggest``). A follower
   without an open follow gets one starting at the run's start time (Mastodon does not say when they
   followed). After the last page, the open follows of people no longer in the list are closed. A
   resumed run re-reads the pages already done (ids only, nothing written) to know who is still there.
2. **posts** (kind ``mastodon_posts``): the public local timeline after the stored status id, as
   ``interaction`` rows ``reply``/``mention``/``boost`` (customer = author, target = the other person;
   ``graph.build.load_graph`` reads them as author → target edges), unique per platform and id, so a
   repeated page adds nothing. The cursor is kept between runs: the next sync reads only new posts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors.mastodon import MastodonConnector, PostPage, SocialProfile
from connectors.sync_state import Checkpoint
from scrm.config import Settings
from scrm.identity import KeyTuple, Merge, in_values, insert_ignoring_conflicts, resolve
from scrm.models import Follow, Identity, Interaction, utcnow
from scrm.store import Store
from scrm.sync_accounts import sync_accounts

__all__ = ["MastodonReport", "sync_mastodon"]

FOLLOWERS, POSTS = "mastodon_followers", "mastodon_posts"
follow_t = Follow.__table__  # type: ignore[attr-defined]
identity_t = Identity.__table__  # type: ignore[attr-defined]
interaction_t = Interaction.__table__  # type: ignore[attr-defined]
SOURCE = "sync:mastodon"


@dataclass
class MastodonReport:
    account: str
    followers: int = 0
    customers_created: int = 0
    follows_opened: int = 0
    follows_closed: int = 0
    statuses: int = 0
    interactions_added: int = 0
    resumed: bool = False
    seconds: float = 0.0
    merges: list[Merge] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["merges"] = [
            {"kept_id": m.kept_id, "merged_id": m.merged_id, "reason": m.reason} for m in self.merges
        ]
        return out


def _handle_key(domain: str, acct: str) -> KeyTuple:
    return ("mastodon", domain, acct)


def _write_followers(
    conn: Connection, account_id: int, domain: str, profiles: list[SocialProfile], since: datetime
) -> tuple[list[int], int, int, list[Merge]]:
    """Customers, identities and open follows of one page; (customer ids, created, follows opened, merges)."""
    key_sets = [
        [_handle_key(domain, p.acct), *((k, "", v) for k, v in p.contacts if "_" not in k)] for p in profiles
    ]
    result = resolve(conn, key_sets, source=SOURCE, names=[p.display_name for p in profiles])
    weak = [
        {"customer_id": cid, "kind": kind, "scope": p.acct, "value": value, "platform": "mastodon"}
        | {"source": SOURCE, "created_at": utcnow()}
        for p, cid in zip(profiles, result.customer_ids, strict=True)
        for kind, value in p.contacts
        if "_" in kind
    ]
    if weak:
        conn.execute(insert_ignoring_conflicts(conn, identity_t), weak)
    f = follow_t.c
    open_now = set(
        conn.execute(
            sa.select(f.customer_id).where(
                f.account_id == account_id,
                f.unsubscribed_at.is_(None),
                f.customer_id.in_(result.customer_ids),
            )
        ).scalars()
    )
    new = sorted(set(result.customer_ids) - open_now)
    if new:
        conn.execute(
            insert_ignoring_conflicts(conn, follow_t),
            [{"account_id": account_id, "customer_id": cid, "subscribed_at": since} for cid in new],
        )
    return result.customer_ids, result.customers_created, len(new), result.merges


def _close_gone(conn: Connection, account_id: int, domain: str, present: set[str], at: datetime) -> int:
    """Close the open follows of this account whose customer has no handle among ``present``."""
    f, i = follow_t.c, identity_t.c
    rows = conn.execute(
        sa.select(f.id, i.value)
        .join_from(follow_t, identity_t, sa.and_(i.customer_id == f.customer_id, i.kind == "mastodon"))
        .where(f.account_id == account_id, f.unsubscribed_at.is_(None), i.scope == domain)
    ).all()
    by_follow: dict[int, bool] = {}
    for follow_id, handle in rows:
        by_follow[follow_id] = by_follow.get(follow_id, False) or handle in present
    gone = sorted(fid for fid, here in by_follow.items() if not here)
    if gone:
        conn.execute(sa.update(follow_t).where(f.id.in_(gone)).values(unsubscribed_at=at))
    return len(gone)


def _write_posts(
    conn: Connection, account_id: int, domain: str, page: PostPage
) -> tuple[int, int, list[Merge]]:
    """Interactions of one page; (added, customers created, merges)."""
    if not page.items:
        return 0, 0, []
    handles = sorted({h for item in page.items for h in (item.author, item.target)})
    names = {item.author: item.author_name for item in page.items}
    keys = [[_handle_key(domain, h)] for h in handles]
    result = resolve(conn, keys, source=SOURCE, names=[names.get(h, "") for h in handles])
    cid = dict(zip(handles, result.customer_ids, strict=True))
    rows = [
        {"platform": "mastodon", "external_id": item.id, "kind": item.kind, "customer_id": cid[item.author]}
        | {"target_customer_id": cid[item.target], "account_id": account_id, "occurred_at": item.time}
        | {"content": item.content, "channel": ""}
        for item in page.items
    ]
    x = interaction_t.c
    ids = [item.id for item in page.items]
    known = set(
        conn.execute(
            sa.select(x.external_id).where(x.platform == "mastodon", in_values(conn, x.external_id, ids))
        ).scalars()
    )
    rows = [row for row in rows if row["external_id"] not in known]
    if rows:
        conn.execute(insert_ignoring_conflicts(conn, interaction_t), rows)
    return len(rows), result.customers_created, result.merges


def _followers(
    conn: Connection,
    connector: MastodonConnector,
    account_id: int,
    checkpoint: Checkpoint,
    report: MastodonReport,
    progress: Callable[[int], None] | None,
) -> None:
    """The followers phase: pages written with the checkpoint, then the follows of those gone closed."""
    since = datetime.fromisoformat(checkpoint.state["since"])
    done_pages = int(checkpoint.state["pages"])
    domain = connector.domain
    present: set[str] = set()
    for index, (profiles, cursor) in enumerate(connector.follower_accounts()):
        present.update(p.acct for p in profiles)
        report.followers += len(profiles)
        if index < done_pages:
            continue  # written before the run was stopped
        with conn.begin():
            _, created, opened, merges = _write_followers(conn, account_id, domain, profiles, since)
            checkpoint.state.update(cursor=cursor, pages=index + 1)
            checkpoint.save(conn)
        report.customers_created += created
        report.follows_opened += opened
        report.merges.extend(merges)
        if progress is not None:
            progress(report.followers)
    with conn.begin():
        report.follows_closed = _close_gone(conn, account_id, domain, present, since)
        checkpoint.save(conn, finished=True)


def sync_mastodon(
    store: Store,
    settings: Settings,
    account_name: str | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> MastodonReport:
    """Run (or resume) one sync of a configured Mastodon account; ``progress(followers done)``."""
    started = time.monotonic()
    name, connector = MastodonConnector.from_settings(settings, account_name)
    account_id = sync_accounts(store, settings)[name]
    report = MastodonReport(account=name)
    with connector:
        with store.connect() as conn:
            checkpoint = Checkpoint(conn, account_id, FOLLOWERS)
            report.resumed = not checkpoint.finished
            if checkpoint.finished:
                checkpoint.state = {"since": utcnow().isoformat(), "cursor": None, "pages": 0}
                checkpoint.save(conn, started=True)
        with store.bulk() as conn:
            _followers(conn, connector, account_id, checkpoint, report, progress)
            with conn.begin():
                posts = Checkpoint(conn, account_id, POSTS)
            for page in connector.posts(str(posts.state.get("cursor", ""))):
                with conn.begin():
                    added, created, merges = _write_posts(conn, account_id, connector.domain, page)
                    posts.state["cursor"] = page.next_cursor
                    posts.save(conn, finished=True)
                report.statuses += page.statuses
                report.interactions_added += added
                report.customers_created += created
                report.merges.extend(merges)
    report.seconds = round(time.monotonic() - started, 3)
    return report
