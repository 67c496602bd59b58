"""score ranking: indexes that page the leaderboard and a community's members from the latest run

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25

``customer_score`` had only its primary key (run_id, customer_id). The web leaderboard ranks a run's
million rows by social value, a page at a time, and a community's page ranks its members; without an
index every page sorted the whole run (0.3 s on SQLite, seconds for a deep page). The first index
covers the ranking (run, social value, customer: the page's ids come from the index alone); the
second finds a community's members in a run, already in social-value order.

Both are partial on a condition that always holds (``social_value IS NOT NULL``): SQLite's planner then
uses them only for the queries that state it (the leaderboard's), never in place of the primary key for
the queries that read a whole run in customer order (the previous snapshot, resolving churn warnings),
where it would read the table in random order (seconds at a million rows).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: the (always true) condition of the partial indexes; queries that want them state it
RANKED = "social_value IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_customer_score_run_social",
        "customer_score",
        ["run_id", "social_value", "customer_id"],
        unique=False,
        sqlite_where=sa.text(RANKED),
        postgresql_where=sa.text(RANKED),
    )
    op.create_index(
        "ix_customer_score_run_community",
        "customer_score",
        ["run_id", "community_id", "social_value"],
        unique=False,
        sqlite_where=sa.text(RANKED),
        postgresql_where=sa.text(RANKED),
    )


def downgrade() -> None:
    op.drop_index("ix_customer_score_run_community", table_name="customer_score")
    op.drop_index("ix_customer_score_run_social", table_name="customer_score")
