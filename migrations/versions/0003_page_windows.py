"""Long pages in windows: what each page's encoding cut, and the store's window settings.

``ls_pages.text_tokens`` / ``tokens_dropped`` count a page's text tokens and those that
reached no vector; ``encoded_with`` is the encoder fingerprint its vectors came from
(``"precomputed"`` for vectors the caller gave), so ``latestore reindex --re-encode``
can resume. ``ls_store.encoder_windowing`` holds the window settings the store's
encoder is loaded with. Pages and stores written before this revision keep NULL there:
unknown counts, and windows off (those pages were truncated to one window).

Revision ID: 0003_page_windows
Revises: 0002_change_log_pruning
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_page_windows"
down_revision = "0002_change_log_pruning"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ls_store") as batch:
        batch.add_column(sa.Column("encoder_windowing", sa.JSON(), nullable=True))
    with op.batch_alter_table("ls_pages") as batch:
        batch.add_column(sa.Column("text_tokens", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("tokens_dropped", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("encoded_with", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ls_pages") as batch:
        batch.drop_column("encoded_with")
        batch.drop_column("tokens_dropped")
        batch.drop_column("text_tokens")
    with op.batch_alter_table("ls_store") as batch:
        batch.drop_column("encoder_windowing")
