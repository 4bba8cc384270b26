"""Turning rankings into SearchHits: one SQL round trip per batch, no ORM objects.

A search's own work on a GPU is a fraction of a millisecond, so loading full ORM
rows (image blobs included) would dominate it: hits read just the columns they
show, through one cached Core statement.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, bindparam, or_, select

from latestore.models import SearchHit
from latestore.schema import PageRow

CHUNK = 500  # ids per statement: far below every backend's bind-parameter limit

_HIT_ROWS = select(
    PageRow.id,
    PageRow.external_id,
    PageRow.document_id,
    PageRow.page_number,
    PageRow.text,
    PageRow.source,
    PageRow.image_path,
    or_(PageRow.image.is_not(None), PageRow.image_path.is_not(None)).label("has_image"),
    PageRow.meta,
).where(PageRow.id.in_(bindparam("ids", expanding=True)))


def hydrate(engine: Engine, rankings: list[list[tuple[int, float]]]) -> list[list[SearchHit]]:
    """SearchHits for each ranking, in order; pages deleted since ranking are skipped."""
    wanted = sorted({page_id for ranking in rankings for page_id, _ in ranking})
    rows: dict[int, dict[str, Any]] = {}
    if wanted:
        with engine.connect() as conn:
            for start in range(0, len(wanted), CHUNK):
                result = conn.execute(_HIT_ROWS, {"ids": wanted[start : start + CHUNK]})
                for row in result:
                    fields = row._asdict()
                    fields["metadata"] = dict(fields.get("metadata") or {})
                    fields["has_image"] = bool(fields["has_image"])
                    rows[int(fields.pop("id"))] = fields
    out = []
    for ranking in rankings:
        hits: list[SearchHit] = []
        for page_id, score in ranking:
            found = rows.get(page_id)
            if found is not None:
                rank = len(hits) + 1
                hits.append(SearchHit(page_id=page_id, score=score, rank=rank, **found))
        out.append(hits)
    return out
