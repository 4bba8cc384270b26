"""Turning rankings and page ids into records: one SQL round trip per batch, no ORM.

A search's own work on a GPU is a fraction of a millisecond, so loading full ORM
rows (image blobs included) would dominate it: hits read just the columns they
show, through one cached Core statement. On SQLite, a search's hits are read with
the driver's own cursor instead: the same statement, compiled once per id count,
without Core's per-execution expansion and result processing (~90 of the ~125 us
a 10-hit read took on a 2-core EPYC VM).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, Select, bindparam, or_, select

from latestore.index.fusion import FusedHit
from latestore.models import SearchHit, StoredPage
from latestore.store.schema import PageRow
from latestore.store.sql import chunks

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


# -- the SQLite fast path (one search's hits) -------------------------------------------
RAW_MAX_IDS = 256  # larger reads (search_many's) go through Core: its cost is per call
_RECORD_NAMES = tuple(column.name for column in _HIT_ROWS.selected_columns)


@lru_cache(maxsize=RAW_MAX_IDS)
def _raw_hit_sql(dialect: Dialect, n_ids: int) -> str:
    statement = select(*RECORD_COLUMNS).where(
        PageRow.id.in_([bindparam(f"id{i}") for i in range(n_ids)])
    )
    compiled = statement.compile(dialect=dialect)
    # Positional binds in id order, and nothing else bound: the cursor takes the ids as is.
    assert list(compiled.positiontup or []) == [f"id{i}" for i in range(n_ids)]
    return str(compiled)


def _raw_hit_rows(engine: Engine, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """RECORD_COLUMNS of ``ids`` through the driver (SQLite: qmark binds, JSON as text)."""
    wanted = sorted(set(ids))
    sql = _raw_hit_sql(engine.dialect, len(wanted))
    rows: dict[int, dict[str, Any]] = {}
    raw = engine.raw_connection()  # pooled, reset on return, as engine.connect() is
    try:
        cursor = raw.cursor()
        try:
            cursor.execute(sql, wanted)
            for values in cursor.fetchall():
                fields = dict(zip(_RECORD_NAMES, values, strict=True))
                meta = fields["metadata"]
                fields["metadata"] = dict(
                    (json.loads(meta) if isinstance(meta, str) else meta) or {}
                )
                fields["has_image"] = bool(fields["has_image"])
                rows[int(fields["page_id"])] = fields
        finally:
            cursor.close()
    finally:
        raw.close()
    return rows


def _hit_rows(engine: Engine, wanted: list[int]) -> dict[int, dict[str, Any]]:
    if wanted and engine.dialect.name == "sqlite" and len(set(wanted)) <= RAW_MAX_IDS:
        return _raw_hit_rows(engine, wanted)
    if wanted:
        with engine.connect() as conn:
            return _rows_by_id(conn, _HIT_ROWS, wanted)
    return {}


def hydrate(
    engine: Engine,
    rankings: list[list[tuple[int, float]]],
    extras: list[list[dict[str, Any]]] | None = None,
) -> list[list[SearchHit]]:
    """SearchHits for each ranking, in order; pages deleted since ranking are skipped.

    ``extras``: more SearchHit fields per hit (aligned with ``rankings``), set when the
    record is made rather than copied in afterwards.
    """
    rows = _hit_rows(engine, [page_id for ranking in rankings for page_id, _ in ranking])
    out = []
    for i, ranking in enumerate(rankings):
        hits: list[SearchHit] = []
        for j, (page_id, score) in enumerate(ranking):
            found = rows.get(page_id)
            if found is not None:
                more = extras[i][j] if extras is not None else {}
                hits.append(SearchHit(score=score, rank=len(hits) + 1, **found, **more))
        out.append(hits)
    return out


def fused_hits(engine: Engine, rankings: list[list[FusedHit]]) -> list[list[SearchHit]]:
    """SearchHits straight from a search plan's rankings (one conversion per hit), in
    order, with each signal's score; pages deleted since ranking are skipped."""
    rows = _hit_rows(engine, [f.page_id for ranking in rankings for f in ranking])
    out = []
    for ranking in rankings:
        hits: list[SearchHit] = []
        for f in ranking:
            found = rows.get(f.page_id)
            if found is not None:
                hits.append(
                    SearchHit(
                        score=f.score,
                        rank=len(hits) + 1,
                        signals=f.signals,
                        maxsim_score=f.maxsim_score,
                        lexical_score=f.lexical_score,
                        lexical_rank=f.lexical_rank,
                        **found,
                    )
                )
        out.append(hits)
    return out
