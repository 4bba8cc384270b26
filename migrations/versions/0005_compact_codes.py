"""The compact storage tiers: residual code rows per page and versioned codebooks.

``ls_codebooks`` holds every codebook version a compact store trained (centroids and
residual buckets, see :mod:`latestore.index.residual_codec`); ``ls_page_codes`` one
page's code rows. Stores of the full tier leave both tables empty.

Revision ID: 0005_compact_codes
Revises: 0004_page_fulltext
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_compact_codes"
down_revision = "0004_page_fulltext"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ls_codebooks",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("first_id", sa.Integer(), nullable=False),
        sa.Column("n_centroids", sa.Integer(), nullable=False),
        sa.Column("trained_tokens", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_ls_codebooks")),
    )
    op.create_table(
        "ls_page_codes",
        sa.Column("page_id", sa.Integer(), nullable=False),
        sa.Column("n_tokens", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["page_id"],
            ["ls_pages.id"],
            name=op.f("fk_ls_page_codes_page_id_ls_pages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("page_id", name=op.f("pk_ls_page_codes")),
    )


def downgrade() -> None:
    op.drop_table("ls_page_codes")
    op.drop_table("ls_codebooks")
