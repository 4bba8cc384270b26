"""Change-log retention: ls_store.pruned_through.

Revision ID: 0002_change_log_pruning
Revises: 0001_initial
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_change_log_pruning"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ls_store") as batch:
        batch.add_column(
            sa.Column("pruned_through", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("ls_store") as batch:
        batch.drop_column("pruned_through")
