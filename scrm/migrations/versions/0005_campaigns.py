"""campaigns: runs unique by key, deliveries unique per run and customer

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _s(length: int) -> sa.String:
    return sa.String(length=length)


def _t() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "campaign_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_key", _s(200), nullable=False),
        sa.Column("campaign", _s(100), nullable=False),
        sa.Column("scheduled_for", _t(), nullable=False),
        sa.Column("started_at", _t(), nullable=False),
        sa.Column("finished_at", _t(), nullable=True),
        sa.Column("status", _s(16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_run")),
        sa.UniqueConstraint("run_key", name=op.f("uq_campaign_run_run_key")),
    )
    with op.batch_alter_table("campaign_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_campaign_run_campaign"), ["campaign"], unique=False)

    op.create_table(
        "delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("openid", _s(128), nullable=False),
        sa.Column("variant", _s(32), nullable=False),
        sa.Column("channel", _s(16), nullable=False),
        sa.Column("status", _s(16), nullable=False),
        sa.Column("reason", _s(64), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("errcode", sa.Integer(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("msg_id", _s(64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("owner", _s(128), nullable=False),
        sa.Column("due_at", _t(), nullable=False),
        sa.Column("claimed_at", _t(), nullable=True),
        sa.Column("sent_at", _t(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["campaign_run.id"],
            name=op.f("fk_delivery_run_id_campaign_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery")),
        sa.UniqueConstraint("run_id", "customer_id", name=op.f("uq_delivery_run_id_customer_id")),
    )
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_customer_sent", ["customer_id", "sent_at"], unique=False)
        batch_op.create_index("ix_delivery_run_status", ["run_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_run_status")
        batch_op.drop_index("ix_delivery_customer_sent")
    op.drop_table("delivery")
    with op.batch_alter_table("campaign_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_run_campaign"))
    op.drop_table("campaign_run")
