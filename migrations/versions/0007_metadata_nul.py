"""Metadata written before NUL was refused: each NUL becomes U+FFFD.

Until issue 26, a NUL character was accepted in metadata (in a value, or in a nested
key). PostgreSQL's ``json`` column kept it as the escape ``\\u0000``, but cannot turn
it back into text, so from then on every metadata filter failed with a driver error,
on any key, as soon as the filter's scan reached that page; and a page read back could
not be written again as it was (NUL is now refused on write). This revision replaces
each NUL in stored metadata keys and values, at any depth, with U+FFFD (the Unicode
replacement character), on both backends, so that no stored text holds NUL anywhere:
filters work again, and pages read back can be written back. Nothing else changes (the
vectors and the content hash do not involve metadata).

Revision ID: 0007_metadata_nul
Revises: 0006_encoder_build
Create Date: 2026-12-06
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007_metadata_nul"
down_revision = "0006_encoder_build"
branch_labels = None
depends_on = None

NUL = "\x00"
REPLACEMENT = "\ufffd"
# How json.dumps (SQLAlchemy's JSON serializer) writes NUL; a candidate row holds it.
ESCAPED = "\\u0000"
CHUNK = 500

pages = sa.table("ls_pages", sa.column("id", sa.Integer), sa.column("metadata", sa.JSON))
keys = sa.table("ls_metadata_keys", sa.column("key", sa.String), sa.column("kinds", sa.String))


def scrub(value: Any) -> Any:
    """``value`` with every NUL in its strings and keys replaced."""
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT)
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    return value


def upgrade() -> None:
    bind = op.get_bind()
    # The text of the column, read without parsing it: PostgreSQL's json cannot be
    # parsed with NUL inside, and a search for the escape finds the candidates in one scan.
    as_text = sa.cast(sa.column("metadata"), sa.Text)
    find = sa.func.strpos if bind.dialect.name == "postgresql" else sa.func.instr
    candidates: list[int] = list(
        bind.execute(
            sa.select(sa.column("id"))
            .select_from(sa.table("ls_pages"))
            .where(find(as_text, ESCAPED) > 0)
        )
        .scalars()
        .all()
    )
    for start in range(0, len(candidates), CHUNK):
        chunk = candidates[start : start + CHUNK]
        rows: list[Any] = list(
            bind.execute(
                sa.select(sa.column("id"), as_text.label("metadata"))
                .select_from(sa.table("ls_pages"))
                .where(sa.column("id").in_(chunk))
            ).all()
        )
        for page_id, blob in rows:
            # Parsed here, in Python, which reads NUL; "\\\\u0000" (an escaped backslash
            # before "u0000") is no NUL and comes back unchanged.
            metadata = json.loads(blob)
            fixed = scrub(metadata)
            if fixed != metadata:
                bind.execute(pages.update().where(pages.c.id == page_id).values(metadata=fixed))
    _rename_keys(bind)


def _rename_keys(bind: sa.Connection) -> None:
    """Top-level keys with NUL (SQLite only: PostgreSQL could never store them in this
    table) are known under their new names, with the kinds they had."""
    found = {key: kinds for key, kinds in bind.execute(sa.select(keys.c.key, keys.c.kinds))}
    for key, kinds in list(found.items()):
        if NUL not in key:
            continue
        new = scrub(key)
        bind.execute(keys.delete().where(keys.c.key == key))
        merged = (set(kinds.split(",")) | set(found.get(new, "").split(","))) - {""}
        if new in found:
            bind.execute(keys.delete().where(keys.c.key == new))
        bind.execute(keys.insert().values(key=new, kinds=",".join(sorted(merged))))
        found[new] = ",".join(sorted(merged))


def downgrade() -> None:
    """Nothing to undo: the NULs are not kept."""
