"""sync checkpoints

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sync_checkpoint',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('state', sa.Text(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_sync_checkpoint_account_id_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_checkpoint')),
    sa.UniqueConstraint('account_id', 'kind', name=op.f('uq_sync_checkpoint_account_id_kind'))
    )
    with op.batch_alter_table('sync_checkpoint', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_checkpoint_account_id'), ['account_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sync_checkpoint', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sync_checkpoint_account_id'))
    op.drop_table('sync_checkpoint')
