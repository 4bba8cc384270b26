"""The write transaction: page rows, vectors, change log and key registry, all or nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from latestore.index.codec import to_storage
from latestore.models import Page
from latestore.store.filters import kind_of
from latestore.store.schema import (
    ChangeRow,
    MetadataKeyRow,
    PageRow,
    PageVectorsRow,
    StoreRow,
    utcnow,
)
from latestore.store.sql import chunks

VECTOR_ROWS_PER_INSERT = 64


@dataclass
class PreparedPage:
    """A validated page with its final vectors, ready to be written."""

    page: Page
    vectors: npt.NDArray[np.floating]
    content_hash: str
    existing_id: int | None  # set when an external id already names a page (upsert)
    storage_dtype: str = "float16"
    # What the encoder cut, and its fingerprint ("precomputed": the caller's vectors).
    text_tokens: int | None = None
    tokens_dropped: int | None = None
    encoded_with: str | None = None
    window_rows: tuple[int, ...] | None = None


def next_change(session: Session) -> int:
    """Take the store's write lock and return this transaction's change number.

    The UPDATE row-locks ``ls_store`` (PostgreSQL) or holds SQLite's write lock, so
    change numbers follow commit order across processes.
    """
    session.execute(
        update(StoreRow).where(StoreRow.id == 1).values(last_change=StoreRow.last_change + 1)
    )
    return int(session.execute(select(StoreRow.last_change).where(StoreRow.id == 1)).scalar_one())


def prune_changes(session: Session, through: int) -> int:
    """Delete change-log rows up to change ``through``; returns how many went.

    ``pruned_through`` is raised in the same transaction, so a reader whose index is
    older than the kept log can tell and reloads from SQL instead of missing changes.
    """
    removed = session.execute(delete(ChangeRow).where(ChangeRow.change_no <= through))
    session.execute(
        update(StoreRow)
        .where(StoreRow.id == 1, StoreRow.pruned_through < through)
        .values(pruned_through=through)
    )
    return int(getattr(removed, "rowcount", 0) or 0)


def write_pages(session: Session, prepared: list[PreparedPage], change_no: int) -> list[int]:
    """Insert new pages and replace upserted ones; returns page ids in input order."""
    now = utcnow()
    rows = [_row_fields(item, change_no, now) for item in prepared]
    fresh = [i for i, item in enumerate(prepared) if item.existing_id is None]
    ids: list[int] = [item.existing_id or 0 for item in prepared]
    if fresh:
        # One multi-row INSERT .. RETURNING; sort_by_parameter_order keeps ids aligned.
        statement = insert(PageRow).returning(PageRow.id, sort_by_parameter_order=True)
        created = session.execute(statement, [dict(rows[i], created_at=now) for i in fresh])
        for i, page_id in zip(fresh, created.scalars().all(), strict=True):
            ids[i] = int(page_id)
    replaced = [i for i, item in enumerate(prepared) if item.existing_id is not None]
    if replaced:
        replaced_ids = [ids[i] for i in replaced]
        # ORM bulk UPDATE by primary key: one executemany, not a round trip per page.
        session.execute(update(PageRow), [dict(rows[i], id=ids[i]) for i in replaced])
        for chunk in chunks(replaced_ids):
            session.execute(delete(PageVectorsRow).where(PageVectorsRow.page_id.in_(chunk)))
        session.execute(
            insert(ChangeRow),
            [{"change_no": change_no, "page_id": p, "op": "delete"} for p in replaced_ids],
        )
    # The stored bytes are a second copy of every vector: build them a few pages at a
    # time, so a large transaction never holds them all at once.
    kept = [
        (p, item) for p, item in zip(ids, prepared, strict=True) if item.storage_dtype != "none"
    ]
    for batch in chunks(kept, VECTOR_ROWS_PER_INSERT):
        session.execute(
            insert(PageVectorsRow),
            [
                {
                    "page_id": p,
                    "n_tokens": len(item.vectors),
                    "data": to_storage(item.vectors, item.storage_dtype),
                }
                for p, item in batch
            ],
        )
    session.execute(
        insert(ChangeRow), [{"change_no": change_no, "page_id": p, "op": "add"} for p in ids]
    )
    _register_keys(session, [item.page.metadata for item in prepared])
    return ids


def _row_fields(item: PreparedPage, change_no: int, now: Any) -> dict[str, Any]:
    page = item.page
    return {
        "external_id": page.external_id,
        "document_id": page.document_id,
        "page_number": page.page_number,
        "text": page.text,
        "image": page.image,
        "image_path": None if page.image_path is None else str(page.image_path),
        "image_sha256": _image_sha(page),
        "source": page.source,
        "meta": page.metadata,
        "content_hash": item.content_hash,
        "n_tokens": len(item.vectors),
        "text_tokens": item.text_tokens,
        "tokens_dropped": item.tokens_dropped,
        "window_rows": None if item.window_rows is None else list(item.window_rows),
        "encoded_with": item.encoded_with,
        "change_no": change_no,
        "updated_at": now,
    }


def delete_pages(session: Session, page_ids: list[int], change_no: int) -> list[int]:
    found: list[int] = []
    for chunk in chunks(page_ids):
        query = select(PageRow.id).where(PageRow.id.in_(chunk))
        found += [int(r) for r in session.execute(query).scalars()]
    if found:
        for chunk in chunks(found):
            session.execute(delete(PageVectorsRow).where(PageVectorsRow.page_id.in_(chunk)))
            session.execute(delete(PageRow).where(PageRow.id.in_(chunk)))
        session.execute(
            insert(ChangeRow),
            [{"change_no": change_no, "page_id": p, "op": "delete"} for p in found],
        )
    return found


def _image_sha(page: Page) -> str | None:
    import hashlib

    if page.image is not None:
        return hashlib.sha256(page.image).hexdigest()
    if page.image_path is not None and page.image_path.is_file():
        return hashlib.sha256(page.image_path.read_bytes()).hexdigest()
    return None


def _register_keys(session: Session, metadatas: list[dict[str, Any]]) -> None:
    seen: dict[str, set[str]] = {}
    for metadata in metadatas:
        for key, value in metadata.items():
            seen.setdefault(key, set()).add(kind_of(value))
    if not seen:
        return
    existing = {
        row.key: row
        for chunk in chunks(list(seen))
        for row in session.execute(
            select(MetadataKeyRow).where(MetadataKeyRow.key.in_(chunk))
        ).scalars()
    }
    for key, kinds in seen.items():
        row = existing.get(key)
        if row is None:
            session.add(MetadataKeyRow(key=key, kinds=",".join(sorted(kinds))))
        else:
            merged = set(row.kinds.split(",")) | kinds
            row.kinds = ",".join(sorted(merged))
