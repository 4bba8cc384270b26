"""SQL schema (SQLAlchemy 2 typed ORM): the single source of truth.

Every add, update and delete commits page rows, their token vectors and a change
record in one transaction; the FAISS index and vector cache are derived from these
tables and can always be rebuilt from them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class StoreRow(Base):
    """The single configuration row of a store (id is always 1)."""

    __tablename__ = "ls_store"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_uuid: Mapped[str] = mapped_column(String(36))
    encoder_name: Mapped[str] = mapped_column(String(200))
    encoder_spec: Mapped[str | None] = mapped_column(Text)
    encoder_fingerprint: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    vector_dtype: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Bumped by every write transaction; its row lock serialises writers so change
    # numbers are assigned in commit order (a snapshot at change N misses nothing <= N).
    last_change: Mapped[int] = mapped_column(Integer, default=0)
    # Change-log rows up to here are deleted; a reader that saw less reloads from SQL.
    pruned_through: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Loader options of the encoder's window settings; NULL (stores from before windows):
    # windows off, as those stores' pages were encoded.
    encoder_windowing: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # How the encoder was loaded (latestore.encoders.registry.load_encoder): the options
    # that change vectors, and a hub model's id and commit; NULL: not recorded (stores
    # from before revision 0005, or an encoder object built by hand).
    encoder_build: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PageRow(Base):
    """One page: a PDF page, an image, or a text passage."""

    __tablename__ = "ls_pages"
    __table_args__ = (
        Index("ix_ls_pages_document_page", "document_id", "page_number"),
        Index("ix_ls_pages_content_hash", "content_hash"),
        {"sqlite_autoincrement": True},  # ids are never reused after a delete
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_id: Mapped[str | None] = mapped_column(String(512), unique=True)
    document_id: Mapped[str | None] = mapped_column(String(512))
    page_number: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str | None] = mapped_column(Text)
    image: Mapped[bytes | None] = mapped_column(LargeBinary)
    image_path: Mapped[str | None] = mapped_column(Text)
    image_sha256: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    content_hash: Mapped[str] = mapped_column(String(64))
    n_tokens: Mapped[int] = mapped_column(Integer)
    # What the encoder cut: text tokens of the page, and those that reached no vector.
    # NULL where unknown (encoded before latestore counted, or vectors given by the caller).
    text_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tokens_dropped: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Vector rows per window, in order, for a page encoded in several windows (so the
    # index can score its best window, StoreConfig.window_scoring); NULL: one window,
    # unknown (before revision 0008, the caller's vectors) or pooled.
    window_rows: Mapped[list[int] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    # Encoder fingerprint of these vectors ("precomputed" for the caller's own); lets a
    # re-encode find the pages still to do after a crash. NULL: before revision 0003.
    encoded_with: Mapped[str | None] = mapped_column(String(64), nullable=True)
    change_no: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PageVectorsRow(Base):
    """A page's token vectors: one row-major ``(n_tokens, dim)`` blob."""

    __tablename__ = "ls_page_vectors"

    page_id: Mapped[int] = mapped_column(
        ForeignKey("ls_pages.id", ondelete="CASCADE"), primary_key=True
    )
    n_tokens: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class PageCodesRow(Base):
    """A compact-tier page's residual code rows (see index/residual_codec.py)."""

    __tablename__ = "ls_page_codes"

    page_id: Mapped[int] = mapped_column(
        ForeignKey("ls_pages.id", ondelete="CASCADE"), primary_key=True
    )
    n_tokens: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class CodebookRow(Base):
    """One codebook version of a compact-tier store; rows coded with it stay valid."""

    __tablename__ = "ls_codebooks"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    first_id: Mapped[int] = mapped_column(Integer)
    n_centroids: Mapped[int] = mapped_column(Integer)
    trained_tokens: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ChangeRow(Base):
    """What each write transaction did, so derived index state can catch up."""

    __tablename__ = "ls_changes"
    __table_args__ = (
        Index("ix_ls_changes_change_no", "change_no"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    change_no: Mapped[int] = mapped_column(Integer)
    page_id: Mapped[int] = mapped_column(Integer)
    op: Mapped[str] = mapped_column(String(8))  # "add" | "delete"


class MetadataKeyRow(Base):
    """Metadata keys seen so far and the JSON kinds of their values.

    Lets a filter reject unknown fields, and refuse numeric comparison on keys that
    also hold strings (which PostgreSQL could not cast), without scanning pages.
    """

    __tablename__ = "ls_metadata_keys"

    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    kinds: Mapped[str] = mapped_column(String(64))  # comma-separated: bool,number,string,...
