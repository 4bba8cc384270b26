"""Rows per window of a page encoded in several windows: ``ls_pages.window_rows``.

A page longer than its encoder's model length is encoded in windows, and its vectors
are all its windows' vectors, one window after the other. This JSON list records how
many rows each window holds, as the encoder kept them (a ColBERT skiplist makes the
counts differ from window to window), so the index can score a page as its best
window (``StoreConfig.window_scoring = "best"``, docs/ranking-quality.md). NULL for a
page of one window, for the caller's own vectors, for pooled pages, and for every page
written before this revision: those score over all their rows, as before.

Revision ID: 0008_window_rows
Revises: 0007_metadata_nul
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_window_rows"
down_revision = "0007_metadata_nul"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ls_pages") as batch:
        batch.add_column(sa.Column("window_rows", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ls_pages") as batch:
        batch.drop_column("window_rows")
