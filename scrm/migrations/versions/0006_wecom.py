"""wecom: customer groups, group memberships (history kept), staff contacts

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _s(length: int) -> sa.String:
    return sa.String(length=length)


def _t() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "customer_group",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("platform", _s(32), nullable=False),
        sa.Column("external_id", _s(128), nullable=False),
        sa.Column("name", _s(200), nullable=False),
        sa.Column("owner", _s(128), nullable=False),
        sa.Column("created_at", _t(), nullable=False),
        sa.Column("dismissed_at", _t(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_customer_group_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_group")),
        sa.UniqueConstraint(
            "account_id", "external_id", name=op.f("uq_customer_group_account_id_external_id")
        ),
    )
    op.create_table(
        "group_membership",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("joined_at", _t(), nullable=False),
        sa.Column("left_at", _t(), nullable=True),
        sa.Column("join_scene", sa.Integer(), nullable=False),
        sa.Column("invited_by_id", sa.Integer(), nullable=True),
        sa.Column("invited_by_staff", _s(128), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["customer_group.id"],
            name=op.f("fk_group_membership_group_id_customer_group"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_group_membership_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["invited_by_id"],
            ["customer.id"],
            name=op.f("fk_group_membership_invited_by_id_customer"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_membership")),
        sa.UniqueConstraint(
            "group_id",
            "customer_id",
            "joined_at",
            name=op.f("uq_group_membership_group_id_customer_id_joined_at"),
        ),
    )
    with op.batch_alter_table("group_membership", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_group_membership_customer_id"), ["customer_id"], unique=False)
    op.create_table(
        "staff_contact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("staff", _s(128), nullable=False),
        sa.Column("added_at", _t(), nullable=False),
        sa.Column("add_way", sa.Integer(), nullable=False),
        sa.Column("state", _s(128), nullable=False),
        sa.Column("removed_at", _t(), nullable=True),
        sa.Column("removed_by", _s(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_staff_contact_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_staff_contact_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_contact")),
        sa.UniqueConstraint(
            "account_id",
            "customer_id",
            "staff",
            "added_at",
            name=op.f("uq_staff_contact_account_id_customer_id_staff_added_at"),
        ),
    )
    with op.batch_alter_table("staff_contact", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_contact_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_staff_contact_state"), ["state"], unique=False)


def downgrade() -> None:
    op.drop_table("staff_contact")
    op.drop_table("group_membership")
    op.drop_table("customer_group")
