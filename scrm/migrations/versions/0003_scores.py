"""score snapshots, communities, stage changes, churn warnings

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('score_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('parameters', sa.Text(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_score_run'))
    )
    with op.batch_alter_table('score_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_score_run_status'), ['status'], unique=False)

    op.create_table('customer_score',
    sa.Column('run_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('customer_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('influence', sa.Float(), nullable=False),
    sa.Column('reach_direct', sa.Integer(), nullable=False),
    sa.Column('reach_two_hop', sa.Integer(), nullable=False),
    sa.Column('referral_reach', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=True),
    sa.Column('is_leader', sa.Boolean(), nullable=False),
    sa.Column('is_bridge', sa.Boolean(), nullable=False),
    sa.Column('bridge_score', sa.Float(), nullable=False),
    sa.Column('recency_days', sa.Float(), nullable=True),
    sa.Column('frequency', sa.Integer(), nullable=False),
    sa.Column('monetary_minor', sa.BigInteger(), nullable=False),
    sa.Column('rfm', sa.String(length=3), nullable=False),
    sa.Column('p_alive', sa.Float(), nullable=True),
    sa.Column('expected_purchases', sa.Float(), nullable=True),
    sa.Column('clv_minor', sa.BigInteger(), nullable=False),
    sa.Column('n_influence', sa.Float(), nullable=False),
    sa.Column('n_reach', sa.Float(), nullable=False),
    sa.Column('n_community', sa.Float(), nullable=False),
    sa.Column('n_value', sa.Float(), nullable=False),
    sa.Column('social_value', sa.Float(), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'customer_id', name=op.f('pk_customer_score'))
    )

    op.create_table('community',
    sa.Column('run_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('community_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('bridges', sa.Integer(), nullable=False),
    sa.Column('modularity_share', sa.Float(), nullable=False),
    sa.Column('leaders', sa.Text(), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'community_id', name=op.f('pk_community'))
    )

    op.create_table('stage_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('from_stage', sa.String(length=16), nullable=False),
    sa.Column('to_stage', sa.String(length=16), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stage_change'))
    )
    with op.batch_alter_table('stage_change', schema=None) as batch_op:
        batch_op.create_index('ix_stage_change_customer_time', ['customer_id', 'changed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_stage_change_run_id'), ['run_id'], unique=False)

    op.create_table('churn_warning',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reasons', sa.Text(), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_run_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_churn_warning'))
    )
    with op.batch_alter_table('churn_warning', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_churn_warning_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_churn_warning_resolved_at'), ['resolved_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('churn_warning', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_churn_warning_resolved_at'))
        batch_op.drop_index(batch_op.f('ix_churn_warning_customer_id'))
    op.drop_table('churn_warning')
    with op.batch_alter_table('stage_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stage_change_run_id'))
        batch_op.drop_index('ix_stage_change_customer_time')
    op.drop_table('stage_change')
    op.drop_table('community')
    op.drop_table('customer_score')
    with op.batch_alter_table('score_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_score_run_status'))
    op.drop_table('score_run')
