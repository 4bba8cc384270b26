"""Turning rankings and page ids into records: one SQL round trip per batch, no ORM.

A search's own work on a GPU is a fraction of a millisecond, so loading full ORM
rows (image blobs included) would dominate it: hits read just the columns they
show, through one cached Core statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Select, bindparam, or_, select

from latestore.models import SearchHit, StoredPage
from latestore.store.schema import PageRow
from latestore.store.writes import chunks

RECORD_COLUMNS: tuple[Any, ...] = (
    PageRow.id.label("page_id"),
    PageRow.external_id,
    PageRow.document_id,
    PageRow.page_number,
    PageRow.text,
    PageRow.source,
    PageRow.image_path,
    or_(PageRow.image.is_not(None), PageRow.image_path.is_not(None)).label("has_image"),
    PageRow.meta.label("metadata"),
)
STORED_COLUMNS = (
    *RECORD_COLUMNS,
    PageRow.content_hash,
    PageRow.n_tokens,
    PageRow.text_tokens,
    PageRow.tokens_dropped,
)
_by_ids = PageRow.id.in_(bindparam("ids", expanding=True))
_HIT_ROWS = select(*RECORD_COLUMNS).where(_by_ids)
_STORED_ROWS = select(*STORED_COLUMNS).where(_by_ids)


def record_fields(row: Any) -> dict[str, Any]:
    """A result row of RECORD_COLUMNS (or STORED_COLUMNS) as record fields."""
    fields: dict[str, Any] = row._asdict()
    fields["metadata"] = dict(fields.get("metadata") or {})
    fields["has_image"] = bool(fields["has_image"])
    return fields


def _rows_by_id(conn: Connection, query: Select[Any], ids: Sequence[int]) -> dict[int, Any]:
    wanted = sorted(set(ids))
    rows: dict[int, dict[str, Any]] = {}
    for chunk in chunks(wanted):
        for row in conn.execute(query, {"ids": list(chunk)}):
            fields = record_fields(row)
            rows[int(fields["page_id"])] = fields
    return rows


def stored_pages(engine: Engine, ids: Sequence[int]) -> dict[int, StoredPage]:
    """The stored pages among ``ids``, by id (missing ids are absent)."""
    if not ids:
        return {}
    with engine.connect() as conn:
        rows = _rows_by_id(conn, _STORED_ROWS, ids)
    return {page_id: StoredPage(**fields) for page_id, fields in rows.items()}


def hydrate(engine: Engine, rankings: list[list[tuple[int, float]]]) -> list[list[SearchHit]]:
    """SearchHits for each ranking, in order; pages deleted since ranking are skipped."""
    wanted = [page_id for ranking in rankings for page_id, _ in ranking]
    rows: dict[int, dict[str, Any]] = {}
    if wanted:
        with engine.connect() as conn:
            rows = _rows_by_id(conn, _HIT_ROWS, wanted)
    out = []
    for ranking in rankings:
        hits: list[SearchHit] = []
        for page_id, score in ranking:
            found = rows.get(page_id)
            if found is not None:
                rank = len(hits) + 1
                hits.append(SearchHit(score=score, rank=rank, **found))
        out.append(hits)
    return out
