"""``latestore list``: the documents or pages a store holds, as rows for a table or JSON.

Pages are read through ``Store.pages`` a block at a time (selected and paged in SQL),
so memory stays bounded by the block whatever the store's size; documents are the
pages grouped by ``document_id`` in that one pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from latestore.models import StoredPage
    from latestore.store import Store

_BLOCK = 1000
_PREVIEW_CHARS = 80


def _pages(
    store: Store, spec: Mapping[str, Any] | None, documents: list[str] | None
) -> Iterator[StoredPage]:
    targets: list[str | None] = [*documents] if documents else [None]
    for document in targets:
        offset = 0
        while True:
            block = store.pages(spec, document_id=document, limit=_BLOCK, offset=offset)
            yield from block
            if len(block) < _BLOCK:
                break
            offset += _BLOCK


def page_rows(
    store: Store, spec: Mapping[str, Any] | None, documents: list[str] | None, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """One row per page (at most ``limit``; 0: all) and how many pages matched."""
    rows: list[dict[str, Any]] = []
    total = 0
    for page in _pages(store, spec, documents):
        total += 1
        if limit and len(rows) >= limit:
            continue
        text = " ".join((page.text or "").split())
        rows.append(
            {
                "page_id": page.page_id,
                "document": page.document_id,
                "page": page.page_number,
                "external_id": page.external_id,
                "tokens": page.n_tokens,
                "tokens_dropped": page.tokens_dropped,
                "image": page.has_image,
                "text": text[:_PREVIEW_CHARS] + ("..." if len(text) > _PREVIEW_CHARS else ""),
            }
        )
    return rows, total


def document_rows(
    store: Store, spec: Mapping[str, Any] | None, documents: list[str] | None, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """One row per document (pages without one: a row each, by external id or page id),
    at most ``limit`` (0: all), and how many documents matched."""
    grouped: dict[str, dict[str, Any]] = {}
    for page in _pages(store, spec, documents):
        key = page.document_id or page.external_id or f"page {page.page_id}"
        row = grouped.get(key)
        if row is None:
            kind = page.metadata.get("file_type")
            row = grouped[key] = {
                "document": key,
                "type": kind if isinstance(kind, str) else None,
                "pages": 0,
                "tokens": 0,
                "tokens_dropped": 0,
            }
        row["pages"] += 1
        row["tokens"] += page.n_tokens
        row["tokens_dropped"] += page.tokens_dropped or 0
    rows = list(grouped.values())
    return (rows[:limit] if limit else rows), len(rows)
