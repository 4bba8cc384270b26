"""How a store's encoder was built: vector options, and a hub model's id and commit.

``ls_store.encoder_build`` holds what :func:`latestore.encoders.registry.load_encoder`
recorded when the store was created: ``source`` (name, folder or hub), the loader
options that change vectors (``max_pixels``, lengths, ``pool_factor``...), and for a hub
model its ``repo_id``, the ``revision`` asked for and the ``commit`` it resolved to. A
later opener loads the same encoder from it without restating anything. Stores from
before keep NULL: nothing recorded, as before.

Revision ID: 0006_encoder_build
Revises: 0005_compact_codes
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_encoder_build"
down_revision = "0005_compact_codes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ls_store only: a SQLite batch rebuild of ls_pages would drop the full-text triggers.
    with op.batch_alter_table("ls_store") as batch:
        batch.add_column(sa.Column("encoder_build", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ls_store") as batch:
        batch.drop_column("encoder_build")
