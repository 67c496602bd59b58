"""identities: merge evidence, the rows each merge moved (for unmerge), merge suggestions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _t() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("customer_merge") as batch_op:
        batch_op.add_column(sa.Column("evidence", sa.Text(), nullable=False, server_default="{}"))
    with op.batch_alter_table("customer_merge") as batch_op:
        batch_op.alter_column("evidence", server_default=None)
    op.create_table(
        "merge_moved_row",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merge_id", sa.Integer(), nullable=False),
        sa.Column("table_name", sa.String(length=32), nullable=False),
        sa.Column("column_name", sa.String(length=32), nullable=False),
        sa.Column("row_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merge_id"],
            ["customer_merge.id"],
            name=op.f("fk_merge_moved_row_merge_id_customer_merge"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merge_moved_row")),
    )
    op.create_index(
        "ix_merge_moved_row_merge_table", "merge_moved_row", ["merge_id", "table_name"], unique=False
    )
    op.create_table(
        "merge_suggestion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_a", sa.Integer(), nullable=False),
        sa.Column("customer_b", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", _t(), nullable=False),
        sa.Column("decided_at", _t(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_a"],
            ["customer.id"],
            name=op.f("fk_merge_suggestion_customer_a_customer"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_b"],
            ["customer.id"],
            name=op.f("fk_merge_suggestion_customer_b_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merge_suggestion")),
        sa.UniqueConstraint(
            "customer_a", "customer_b", name=op.f("uq_merge_suggestion_customer_a_customer_b")
        ),
    )
    with op.batch_alter_table("merge_suggestion") as batch_op:
        batch_op.create_index(batch_op.f("ix_merge_suggestion_customer_b"), ["customer_b"], unique=False)
        batch_op.create_index(batch_op.f("ix_merge_suggestion_status"), ["status"], unique=False)


def downgrade() -> None:
    op.drop_table("merge_suggestion")
    op.drop_table("merge_moved_row")
    with op.batch_alter_table("customer_merge") as batch_op:
        batch_op.drop_column("evidence")
