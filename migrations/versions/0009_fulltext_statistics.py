"""Corpus statistics for BM25 on PostgreSQL: ``ls_fulltext_stats`` and its triggers.

PostgreSQL ranks lexical hits by BM25 computed in SQL (``latestore.store.
fulltext_postgres``), which needs the number of indexed pages and their total length.
This revision creates the table, fills it from the pages already stored, and adds the
triggers on ``ls_pages`` that keep it exact in every writing transaction
(``latestore.store.fulltext_pg_stats``). SQLite needs nothing: FTS5 keeps its own.

A store created after this revision already has them (the full-text index's install
makes them): they are made again here, from the same pages, to the same sums.

Revision ID: 0009_fulltext_statistics
Revises: 0008_window_rows
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

from latestore.store.fulltext_pg_stats import install_statistics, remove_statistics

revision = "0009_fulltext_statistics"
down_revision = "0008_window_rows"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        install_statistics(bind)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        remove_statistics(bind)
