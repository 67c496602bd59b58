"""Mirror the accounts of ``config.toml`` into the store's ``account`` table."""

from __future__ import annotations

import sqlalchemy as sa

from scrm.config import Settings
from scrm.models import Account, utcnow
from scrm.store import Store

__all__ = ["sync_accounts"]


def sync_accounts(store: Store, settings: Settings) -> dict[str, int]:
    """Insert or update one row per configured account; return config name -> account id."""
    t = Account.__table__  # type: ignore[attr-defined]
    ids: dict[str, int] = {}
    with store.connect() as conn:
        for name, account in settings.accounts.items():
            row = conn.execute(
                sa.select(t.c.id, t.c.name, t.c.display_name).where(
                    t.c.platform == account.platform, t.c.external_id == account.appid
                )
            ).first()
            if row is None:
                ids[name] = conn.execute(
                    sa.insert(t).returning(t.c.id),
                    {
                        "name": name,
                        "platform": account.platform,
                        "external_id": account.appid,
                        "display_name": account.display_name,
                        "created_at": utcnow(),
                    },
                ).scalar_one()
            else:
                ids[name] = row.id
                if (row.name, row.display_name) != (name, account.display_name):
                    conn.execute(
                        sa.update(t)
                        .where(t.c.id == row.id)
                        .values(name=name, display_name=account.display_name)
                    )
    return ids
