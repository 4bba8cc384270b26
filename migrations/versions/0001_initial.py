"""Initial schema: store config, pages, page vectors, change log, metadata keys.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ls_store",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_uuid", sa.String(length=36), nullable=False),
        sa.Column("encoder_name", sa.String(length=200), nullable=False),
        sa.Column("encoder_spec", sa.Text(), nullable=True),
        sa.Column("encoder_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("vector_dtype", sa.String(length=16), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("last_change", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ls_store")),
    )
    op.create_table(
        "ls_pages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("external_id", sa.String(length=512), nullable=True),
        sa.Column("document_id", sa.String(length=512), nullable=True),
        sa.Column("page_number", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("image", sa.LargeBinary(), nullable=True),
        sa.Column("image_path", sa.Text(), nullable=True),
        sa.Column("image_sha256", sa.String(length=64), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("n_tokens", sa.Integer(), nullable=False),
        sa.Column("change_no", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ls_pages")),
        sa.UniqueConstraint("external_id", name=op.f("uq_ls_pages_external_id")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_ls_pages_content_hash", "ls_pages", ["content_hash"])
    op.create_index("ix_ls_pages_document_page", "ls_pages", ["document_id", "page_number"])
    op.create_table(
        "ls_page_vectors",
        sa.Column("page_id", sa.Integer(), nullable=False),
        sa.Column("n_tokens", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["page_id"],
            ["ls_pages.id"],
            name=op.f("fk_ls_page_vectors_page_id_ls_pages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("page_id", name=op.f("pk_ls_page_vectors")),
    )
    op.create_table(
        "ls_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("change_no", sa.Integer(), nullable=False),
        sa.Column("page_id", sa.Integer(), nullable=False),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ls_changes")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_ls_changes_change_no", "ls_changes", ["change_no"])
    op.create_table(
        "ls_metadata_keys",
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("kinds", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_ls_metadata_keys")),
    )


def downgrade() -> None:
    op.drop_table("ls_metadata_keys")
    op.drop_index("ix_ls_changes_change_no", table_name="ls_changes")
    op.drop_table("ls_changes")
    op.drop_table("ls_page_vectors")
    op.drop_index("ix_ls_pages_document_page", table_name="ls_pages")
    op.drop_index("ix_ls_pages_content_hash", table_name="ls_pages")
    op.drop_table("ls_pages")
    op.drop_table("ls_store")
