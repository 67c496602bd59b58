"""A campaign's switch: paused or not (table ``campaign_state``), whichever source defines the campaign.

A paused campaign's scheduled job and its triggers do nothing (and say so in the log), a new run of
it is refused, and a run that is sending stops claiming deliveries at its next chunk: what is still
``planned`` stays planned and is sent, once, after :func:`set_paused` ``(..., False)`` by the next run
of the same key (``scrm campaign run NAME`` resumes the unfinished run; ``scrm serve`` resumes it at its
next trigger check).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from scrm.access import audit
from scrm.models import utcnow
from scrm.models_web import CampaignState
from scrm.store import Store

__all__ = ["is_paused", "paused_campaigns", "set_paused"]

state_t = CampaignState.__table__  # type: ignore[attr-defined]


def is_paused(conn: Connection, name: str) -> bool:
    """Whether campaign ``name`` is paused."""
    paused = conn.execute(sa.select(state_t.c.paused).where(state_t.c.campaign == name)).scalar()
    return bool(paused)


def paused_campaigns(conn: Connection) -> set[str]:
    """The names of every paused campaign."""
    return set(conn.execute(sa.select(state_t.c.campaign).where(state_t.c.paused.is_(True))).scalars())


def set_paused(store: Store, name: str, paused: bool, actor: str) -> bool:
    """Pause or resume campaign ``name`` (audited); return whether that changed anything.

    The caller checks that the campaign exists (:func:`campaigns.library.set_paused` does).
    """
    insert = sqlite_insert if store.dialect == "sqlite" else pg_insert
    with store.connect() as conn:
        before = is_paused(conn, name)
        values = {"campaign": name, "paused": paused, "changed_by": actor[:120], "changed_at": utcnow()}
        stmt = insert(state_t).values(**values)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["campaign"],
                set_={k: stmt.excluded[k] for k in ("paused", "changed_by", "changed_at")},
            )
        )
        audit(conn, actor, "campaign.pause" if paused else "campaign.resume", name, {"was_paused": before})
    return before != paused
