"""Full-text index of page text, for lexical and hybrid search.

SQLite: an external-content FTS5 table ``ls_pages_fts`` and three triggers on
``ls_pages``; PostgreSQL: a generated, stored ``tsvector`` column
``ls_pages.text_search`` with a GIN index (see :mod:`latestore.store.fulltext`). Both are
filled from the pages already stored, in the migration's transaction, with the
default analyzer ("english"): existing stores' configs name no analyzer, which reads
as that default. A store created later with another analyzer replaces the index in
the transaction that records its configuration.

A later migration that rebuilds ``ls_pages`` in SQLite batch mode (a table copy)
drops the triggers with the old table: it must call ``fulltext.install`` again.

Revision ID: 0004_page_fulltext
Revises: 0003_page_windows
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

from latestore.store import fulltext

revision = "0004_page_fulltext"
down_revision = "0003_page_windows"
branch_labels = None
depends_on = None


def upgrade() -> None:
    fulltext.install(op.get_bind(), fulltext.DEFAULT_ANALYZER)


def downgrade() -> None:
    fulltext.remove(op.get_bind())
