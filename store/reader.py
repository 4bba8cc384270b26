"""Reading pages back: by id, by external id, by listing, their vectors and images."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import distinct, func, select

from latestore.errors import InvalidInputError, PageNotFoundError
from latestore.models import StoredPage, StoreStats
from latestore.store.database import Database
from latestore.store.filters import filter_clause, matching_page_ids
from latestore.store.hits import STORED_COLUMNS, record_fields, stored_pages
from latestore.store.schema import PageRow, PageVectorsRow
from latestore.store.sql import chunks
from latestore.store.sync import decode
from latestore.store.validation import (
    MAX_PAGE_ID,
    check_unicode,
    checked_external_ids,
    checked_ids,
    storable,
)

T = TypeVar("T")


def still_stored(read: Callable[[list[int]], list[T]], page_ids: Sequence[int]) -> dict[int, T]:
    """``read(ids)`` (a Store call that raises PageNotFoundError for missing pages) for the
    pages that still exist: pages deleted between ranking and display are left out. One
    read for all, again without those found missing; each retry drops at least one."""
    wanted = list(dict.fromkeys(page_ids))
    while wanted:
        try:
            return dict(zip(wanted, read(wanted), strict=True))
        except PageNotFoundError as missing:
            gone = set(missing.page_ids or ())
            if not gone:
                raise
            wanted = [i for i in wanted if i not in gone]
    return {}


def get_many(db: Database, ids: Sequence[int], what: str = "get_many") -> list[StoredPage]:
    """Pages by id, in the order asked; PageNotFoundError naming every missing id."""
    wanted = checked_ids(ids, what)
    found = stored_pages(db.engine, [i for i in wanted if 0 < i <= MAX_PAGE_ID])
    missing = [i for i in wanted if i not in found]
    if missing:
        raise PageNotFoundError(f"no page with id {missing[:10]}", page_ids=missing)
    return [found[i] for i in wanted]


def get_by_external_ids(db: Database, external_ids: Sequence[str]) -> list[StoredPage]:
    """Pages by external id, in the order asked; PageNotFoundError naming every missing one."""
    wanted = checked_external_ids(external_ids, "get_by_external_ids")
    ids: dict[str, int] = {}
    with db.session() as session:
        for chunk in chunks([e for e in wanted if storable(e)]):
            query = select(PageRow.external_id, PageRow.id).where(PageRow.external_id.in_(chunk))
            ids.update((e, int(i)) for e, i in session.execute(query) if e is not None)
    missing = [e for e in wanted if e not in ids]
    if missing:
        raise PageNotFoundError(f"no page with external id {missing[:10]}", external_ids=missing)
    pages = stored_pages(db.engine, list(ids.values()))
    return [pages[ids[e]] for e in wanted]


def list_pages(
    db: Database,
    filter: Mapping[str, Any] | None,
    document_id: str | None,
    limit: int | None,
    offset: int,
) -> list[StoredPage]:
    """Stored pages in page-id order, selected and paged in SQL."""
    if limit is not None:
        _check_at_least("limit", limit, 1)
    _check_at_least("offset", offset, 0)
    if document_id is not None:
        if not isinstance(document_id, str):
            raise InvalidInputError(f"document_id is text, got {document_id!r:.80}")
        check_unicode(document_id, "document_id")
        if not storable(document_id):
            return []
    # No store holds more pages than there are page ids: a larger limit means "all",
    # and a larger offset skips every page; either would overflow a 64-bit parameter.
    if offset > MAX_PAGE_ID:
        return []
    if limit is not None and limit > MAX_PAGE_ID:
        limit = None
    query = select(*STORED_COLUMNS).order_by(PageRow.id).offset(offset).limit(limit)
    with db.session() as session:
        if filter is not None:
            query = query.where(filter_clause(session, filter))
        if document_id is not None:
            query = query.where(PageRow.document_id == document_id)
        return [StoredPage(**record_fields(row)) for row in session.execute(query)]


def _check_at_least(name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidInputError(f"{name} must be an integer >= {least}, got {value!r}")


def page_ids(db: Database, filter: Mapping[str, Any] | None) -> list[int]:
    with db.session() as session:
        if filter is None:
            query = select(PageRow.id).order_by(PageRow.id)
            return [int(i) for i in session.execute(query).scalars()]
        return matching_page_ids(session, filter)


def page_vectors(
    db: Database, page_ids: Sequence[int], what: str = "page_vectors_many"
) -> list[npt.NDArray[np.float32]]:
    """Pages' token vectors as stored in SQL, float32 ``(n_tokens, dim)`` each, in the
    order asked, read in one query per chunk of ids; PageNotFoundError naming every
    missing id."""
    wanted = checked_ids(page_ids, what)
    found: dict[int, npt.NDArray[np.float32]] = {}
    valid = [i for i in dict.fromkeys(wanted) if 0 < i <= MAX_PAGE_ID]
    if db.config.storage.tier == "compact-only":  # no full vectors: the decoded codes
        from latestore.store.compact import decoded_vectors

        found = decoded_vectors(db.engine, valid, db.dim, db.config.storage.compact_bits)
    else:
        found = _stored_vectors(db, valid)
    missing = [i for i in wanted if i not in found]
    if missing:
        raise PageNotFoundError(f"no page with id {missing[:10]}", page_ids=missing)
    return [found[i] for i in wanted]


def _stored_vectors(db: Database, valid: list[int]) -> dict[int, npt.NDArray[np.float32]]:
    found: dict[int, npt.NDArray[np.float32]] = {}
    with db.session() as session:
        for chunk in chunks(valid):
            rows = session.execute(
                select(PageVectorsRow.page_id, PageVectorsRow.n_tokens, PageVectorsRow.data).where(
                    PageVectorsRow.page_id.in_(chunk)
                )
            )
            for row in rows:
                page_id = int(row.page_id)
                vectors = decode(page_id, row.data, row.n_tokens, db.dim, db.dtype)
                # A copy: the blob's buffer is read-only.
                found[page_id] = np.array(vectors, dtype=np.float32)
    return found


def image(db: Database, page_id: int) -> bytes | None:
    (page_id,) = checked_ids([page_id], "image")
    with db.session() as session:
        found = (
            session.execute(select(PageRow.id, PageRow.image).where(PageRow.id == page_id)).first()
            if 0 < page_id <= MAX_PAGE_ID
            else None
        )
    if found is None:
        raise PageNotFoundError(f"no page with id {page_id}", page_ids=[page_id])
    blob: bytes | None = found.image
    return blob


def count(db: Database) -> int:
    with db.session() as session:
        return int(session.execute(select(func.count(PageRow.id))).scalar_one())


def stats(db: Database, encoder_name: str, encoder_fingerprint: str) -> StoreStats:
    """Call with the index lock held: the figures come from the synced index."""
    index = db.derived.sync.index
    with db.session() as session:
        documents, with_image, image_bytes = session.execute(
            select(
                func.count(distinct(PageRow.document_id)),
                func.count(PageRow.id).filter(PageRow.image.is_not(None)),
                func.coalesce(func.sum(func.length(PageRow.image)), 0),
            )
        ).one()
    return StoreStats(
        pages=len(index.vectors),
        documents=int(documents),
        pages_with_image=int(with_image),
        image_bytes=int(image_bytes),
        tokens=index.vectors.total_tokens,
        dim=db.dim,
        vector_dtype="none" if db.config.storage.tier == "compact-only" else db.dtype,
        memory_dtype=str(index.vectors.dtype),
        vector_cache="disk"
        if index.vectors.arena is not None and index.vectors.fallback is None
        else "memory",
        vector_cache_fallback=index.vectors.fallback,
        encoder=encoder_name,
        encoder_fingerprint=encoder_fingerprint,
        index=index.tokens.describe(),
        candidate_search="torch" if index.torch_candidates else "faiss",
        search_plan=index.plan(db.config.search_params()),
        **_device_footprint(db),
        change_no=db.derived.sync.applied_change,
        change_log_pruned_through=db.derived.sync.pruned_through,
        index_dir=None if db.derived.sync.index_dir is None else str(db.derived.sync.index_dir),
    )


def _device_footprint(db: Database) -> dict[str, Any]:
    """Where ranking runs and what the resident pages cost there."""
    index = db.derived.sync.index
    device = index.device_tokens
    if device is None:
        return {"device": "cpu" if not index.device_fallback else index.device}
    held = max(1, device.ntotal)
    return {
        "device": str(device.device),
        "device_dtype": str(device.dtype).removeprefix("torch."),
        "device_bytes_per_token": device.bytes_per_row(),
        "device_resident_bytes": device.resident_bytes(),
        "device_capacity_per_token": round(device.resident_bytes() / held, 1),
    }
