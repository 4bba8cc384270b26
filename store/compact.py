"""The compact tiers in the store: codebooks and code rows in SQL, written with the pages.

Both compact tiers keep each page's residual code rows in ``ls_page_codes`` and every
codebook version in ``ls_codebooks``, written in the page's own transaction, so the
codes are as durable as the pages and a store opened anywhere decodes them the same
way. The ``compact`` tier also keeps the full-precision vectors in
``ls_page_vectors`` (the final rerank reads them); ``compact-only`` keeps no
full-precision copy at all.

Codebooks are versioned. The first write trains version 1 on its own tokens; a write
that brings the store to ``GROWTH`` times the tokens the newest version was trained
at trains the next version, on a sample of that write's tokens and of stored pages
(full vectors in ``compact``, decoded codes in ``compact-only``), and codes its pages
with it. Rows coded earlier keep their version: their centroid ids lie in that
version's range, so they decode as they did (see index/residual_codec.py). Training
cost is bounded by the sample, never by the store.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.orm import Session

from latestore.errors import StoreCorruptionError
from latestore.index.residual_codec import (
    ID_BYTES,
    SAMPLE_PER_CENTROID,
    SHORT_ID_BYTES,
    Codebook,
    Codebooks,
    auto_centroids,
    code_bytes,
    from_blob,
    to_blob,
    train,
)
from latestore.store.schema import CodebookRow, PageCodesRow, PageVectorsRow
from latestore.store.sql import chunks
from latestore.store.sync import IndexSync, decode
from latestore.store.writes import VECTOR_ROWS_PER_INSERT, PreparedPage

if TYPE_CHECKING:
    from latestore.index.compact_index import CompactIndex
    from latestore.models import StoreConfig

GROWTH = 4

Rows = npt.NDArray[np.uint8]


def is_compact(config: StoreConfig) -> bool:
    return config.storage.tier != "full"


def read_books(engine: Engine) -> list[Codebook]:
    with Session(engine) as session:
        return _books(session)


def _books(session: Session) -> list[Codebook]:
    rows = session.execute(select(CodebookRow.data).order_by(CodebookRow.version)).scalars()
    return [Codebook.from_bytes(blob) for blob in rows]


def write_codes(
    session: Session, config: StoreConfig, page_ids: list[int], prepared: list[PreparedPage]
) -> list[Rows]:
    """Code ``prepared`` pages (training a codebook version if due) and store the rows,
    in the caller's write transaction. Returns each page's code rows, in order."""
    books = Codebooks(_books(session))
    vectors = [np.asarray(p.vectors, dtype=np.float32) for p in prepared]
    replaced = set(page_ids)
    before = _stored_tokens(session) - _stored_tokens(session, sorted(replaced))
    after = before + sum(len(v) for v in vectors)
    latest = books.latest
    if latest is None or after >= GROWTH * latest.trained_tokens:
        book = _train_version(session, config, books, vectors, after)
        session.execute(insert(CodebookRow), [codebook_row(book)])
        books.add(book)
    newest = books.latest
    assert newest is not None
    rows = [newest.encode(v) for v in vectors]
    for chunk in chunks(sorted(replaced)):
        session.execute(delete(PageCodesRow).where(PageCodesRow.page_id.in_(chunk)))
    pairs = list(zip(page_ids, rows, strict=True))
    for batch in chunks(pairs, VECTOR_ROWS_PER_INSERT):
        session.execute(
            insert(PageCodesRow),
            [{"page_id": p, "n_tokens": len(r), "data": to_blob(r)} for p, r in batch],
        )
    return rows


def _stored_tokens(session: Session, page_ids: Sequence[int] | None = None) -> int:
    if page_ids is None:
        query = select(func.coalesce(func.sum(PageCodesRow.n_tokens), 0))
        return int(session.execute(query).scalar_one())
    total = 0
    for chunk in chunks(page_ids):
        query = select(func.coalesce(func.sum(PageCodesRow.n_tokens), 0)).where(
            PageCodesRow.page_id.in_(chunk)
        )
        total += int(session.execute(query).scalar_one())
    return total


def _train_version(
    session: Session,
    config: StoreConfig,
    books: Codebooks,
    batch: list[npt.NDArray[np.float32]],
    store_tokens: int,
) -> Codebook:
    """The next codebook version, sized for ``store_tokens``, trained on a sample."""
    fresh = np.concatenate(batch) if batch else np.zeros((0, 0), np.float32)
    wanted = SAMPLE_PER_CENTROID * auto_centroids(store_tokens)
    parts = [fresh]
    if books.latest is not None and len(fresh) < wanted:
        parts.append(_stored_sample(session, config, books, wanted - len(fresh)))
    sample = np.concatenate([p for p in parts if len(p)])
    latest = books.latest
    return train(
        sample,
        config.storage.compact_bits,
        version=1 if latest is None else latest.version + 1,
        first_id=books.next_first_id,
        n_centroids=min(auto_centroids(store_tokens), auto_centroids(len(sample))),
        trained_tokens=store_tokens,
    )


def _stored_sample(
    session: Session, config: StoreConfig, books: Codebooks, tokens: int
) -> npt.NDArray[np.float32]:
    """About ``tokens`` stored token vectors from randomly chosen pages."""
    average = session.execute(select(func.avg(PageCodesRow.n_tokens))).scalar_one() or 1
    n_pages = max(1, int(tokens / float(average)))
    picked = (
        session.execute(select(PageCodesRow.page_id).order_by(func.random()).limit(n_pages))
        .scalars()
        .all()
    )
    parts: list[npt.NDArray[np.float32]] = []
    for chunk in chunks(list(picked)):
        if config.storage.tier == "compact":
            query = select(PageVectorsRow.page_id, PageVectorsRow.n_tokens, PageVectorsRow.data)
            for page_id, n, blob in session.execute(query.where(PageVectorsRow.page_id.in_(chunk))):
                dim = books.books[0].dim
                parts.append(
                    np.asarray(
                        decode(page_id, blob, n, dim, config.storage.vector_dtype), np.float32
                    )
                )
        else:
            query = select(PageCodesRow.page_id, PageCodesRow.n_tokens, PageCodesRow.data)
            for page_id, n, blob in session.execute(query.where(PageCodesRow.page_id.in_(chunk))):
                book = books.books[0]
                width = code_bytes(book.dim, book.nbits)
                parts.append(books.decode(_rows(page_id, blob, n, width)))
    return np.concatenate(parts) if parts else np.zeros((0, books.books[0].dim), np.float32)


def decoded_vectors(
    engine: Engine, page_ids: list[int], dim: int, nbits: int
) -> dict[int, npt.NDArray[np.float32]]:
    """Pages' decoded codes (a compact-only store's only vectors), by page id."""
    width = code_bytes(dim, nbits)
    found: dict[int, npt.NDArray[np.float32]] = {}
    with Session(engine) as session:
        books = Codebooks(_books(session))
        query = select(PageCodesRow.page_id, PageCodesRow.n_tokens, PageCodesRow.data)
        for chunk in chunks(page_ids):
            for page_id, n, blob in session.execute(query.where(PageCodesRow.page_id.in_(chunk))):
                found[int(page_id)] = books.decode(_rows(page_id, blob, n, width))
    return found


class CompactSync(IndexSync):
    """IndexSync for the compact tiers: the index is filled with code rows, and the
    full-precision vectors (``compact``) are read for the final pages only."""

    index: CompactIndex  # type: ignore[assignment]

    def _read_vectors(self, page_ids: list[int] | None = None) -> Iterator[tuple[int, Any]]:
        width = code_bytes(self.index.dim, self.index.nbits)
        with self.engine.connect() as conn:
            query = select(PageCodesRow.page_id, PageCodesRow.n_tokens, PageCodesRow.data)
            if page_ids is None:
                rows = conn.execution_options(yield_per=512).execute(query)
                for page_id, n_tokens, data in rows:
                    yield page_id, _rows(page_id, data, n_tokens, width)
                return
            for chunk in chunks(page_ids):
                for page_id, n_tokens, data in conn.execute(
                    query.where(PageCodesRow.page_id.in_(chunk))
                ):
                    yield page_id, _rows(page_id, data, n_tokens, width)

    def read_full(self, page_ids: list[int]) -> Iterator[tuple[int, Any]]:
        """Full-precision vectors of ``page_ids`` from ``ls_page_vectors``."""
        return IndexSync._read_vectors(self, page_ids)


def _rows(page_id: int, blob: bytes, n_tokens: int, width: int) -> Rows:
    """A page's stored blob as in-memory code rows (uint32 ids) of ``width`` bytes."""
    rows = from_blob(blob, n_tokens, width)
    if rows is None:
        short = width - ID_BYTES + SHORT_ID_BYTES
        raise StoreCorruptionError(
            f"the stored codes of page {page_id} are damaged in the database "
            f"({len(blob)} bytes, expected {n_tokens}x{short} or {n_tokens}x{width}); "
            "delete and re-add that page",
            page_ids=[page_id],
        )
    return rows


def load_compact_index(
    engine: Engine,
    dim: int,
    store_uuid: str,
    dtype: str,
    config: StoreConfig,
    index_dir: Any,
) -> tuple[IndexSync, str]:
    """The compact tier's derived index, filled from SQL's code rows."""
    from latestore.index.compact_index import CompactIndex

    holder: dict[str, CompactSync] = {}

    def fetch(page_ids: list[int]) -> Iterator[tuple[int, Any]]:
        return holder["sync"].read_full(page_ids)

    index = CompactIndex(
        dim,
        config.storage.compact_bits,
        config.storage.tier,
        read_books=lambda: read_books(engine),
        fetch=fetch if config.storage.tier == "compact" else None,
        window_scoring=config.search.window_scoring or "union",
    )
    sync = CompactSync(engine, index, store_uuid, dtype, index_dir)  # type: ignore[arg-type]
    holder["sync"] = sync
    return sync, sync.load()


def codebook_row(book: Codebook) -> dict[str, Any]:
    """The ``ls_codebooks`` row that stores ``book``."""
    return {
        "version": book.version,
        "first_id": book.first_id,
        "n_centroids": book.n_centroids,
        "trained_tokens": book.trained_tokens,
        "data": book.to_bytes(),
    }
