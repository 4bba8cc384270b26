"""The compact storage tiers through the public Store, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from sqlalchemy import create_engine, func, insert, select, update
from sqlalchemy.orm import Session

from latestore import Page, SearchConfig, StorageConfig, StoreConfig
from latestore.errors import InvalidInputError
from latestore.index.residual_codec import (
    Codebook,
    Codebooks,
    code_bytes,
    from_blob,
    stored_code_bytes,
    train,
)
from latestore.store.compact import codebook_row
from latestore.store.schema import CodebookRow, PageCodesRow, PageVectorsRow
from latestore.store.sql import to_url
from tests.helpers import precomputed_store

DIM = 32
TIERS = ("compact", "compact-only")


def corpus(rng: np.random.Generator, n_pages: int, tokens: int = 24) -> list[npt.NDArray]:
    centres = rng.standard_normal((48, DIM))
    pages = []
    for _ in range(n_pages):
        v = centres[rng.integers(0, 48, tokens)] + 0.35 * rng.standard_normal((tokens, DIM))
        pages.append((v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32))
    return pages


def config(tier: str, **extra: object) -> StoreConfig:
    # exhaustive_max_tokens=0: every search goes through the code candidates.
    return StoreConfig(
        storage=StorageConfig(tier=tier),
        search=SearchConfig(exhaustive_max_tokens=0, n_rerank=16),
        **extra,
    )  # type: ignore[arg-type]


def maxsim(query: npt.NDArray, page: npt.NDArray) -> float:
    return float((query.astype(np.float64) @ page.astype(np.float64).T).max(axis=1).sum())


def stored_codes(url: str) -> tuple[Codebooks, dict[int, npt.NDArray[np.uint8]]]:
    """Codebooks and code rows straight from SQL, without the store's index."""
    engine = create_engine(to_url(url))
    try:
        with Session(engine) as session:
            books = Codebooks(
                Codebook.from_bytes(b)
                for b in session.execute(
                    select(CodebookRow.data).order_by(CodebookRow.version)
                ).scalars()
            )
            width = code_bytes(DIM, 2)
            rows = {}
            for p, n, d in session.execute(
                select(PageCodesRow.page_id, PageCodesRow.n_tokens, PageCodesRow.data)
            ):
                found = from_blob(d, n, width)
                assert found is not None, f"page {p}: a blob of neither width"
                rows[int(p)] = found
    finally:
        engine.dispose()
    return books, rows


def count_rows(url: str, table: type) -> int:
    engine = create_engine(to_url(url))
    try:
        with Session(engine) as session:
            return int(session.execute(select(func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("tier", TIERS)
def test_add_search_delete_reopen(store_url: str, rng: np.random.Generator, tier: str) -> None:
    pages = corpus(rng, 120)
    with precomputed_store(store_url, DIM, config(tier)) as store:
        ids = store.add_pages([Page(vectors=v, external_id=f"p{i}") for i, v in enumerate(pages)])
        stats = store.stats()
        assert stats.index["kind"] == "residual2" and stats.index["tier"] == tier
        assert stats.tokens == 120 * 24
        for i in (3, 50, 119):
            assert store.search(pages[i][:6], k=3)[0].page_id == ids[i]
        assert store.delete([ids[50]]) == 1
        assert ids[50] not in {h.page_id for h in store.search(pages[50][:6], k=10)}
        before = [(h.page_id, h.score) for h in store.search(pages[3][:6], k=10)]
    with precomputed_store(store_url, DIM) as store:  # the recorded tier, no config given
        assert store.config.storage.tier == tier
        after = [(h.page_id, h.score) for h in store.search(pages[3][:6], k=10)]
        assert [p for p, _ in after] == [p for p, _ in before]
        np.testing.assert_allclose([s for _, s in after], [s for _, s in before], rtol=1e-6)
        assert store.count() == 119
        # Writes after a reopen code with the stored codebook.
        (new_id,) = store.add_pages([Page(vectors=pages[50], external_id="again")])
        assert store.search(pages[50][:6], k=1)[0].page_id == new_id


def test_compact_final_scores_are_exact_over_full_vectors(
    store_url: str, rng: np.random.Generator
) -> None:
    pages = corpus(rng, 150)
    with precomputed_store(store_url, DIM, config("compact")) as store:
        ids = store.add_pages([Page(vectors=v) for v in pages])
        by_id = dict(zip(ids, pages, strict=True))
        for n, query in enumerate((pages[7][:5], pages[90][2:9], corpus(rng, 1, 4)[0])):
            hits = store.search(query, k=10)
            assert len(hits) == 10
            for hit in hits:
                # The float16 vectors SQL holds, scored by brute force.
                full = by_id[hit.page_id].astype(np.float16).astype(np.float32)
                assert hit.score == pytest.approx(maxsim(query, full), abs=1e-4)
            # exhaustive: every page ranked on the codes, the best n_rerank exactly.
            exact = store.search(query, k=10, exhaustive=True)
            for hit in exact:
                full = by_id[hit.page_id].astype(np.float16).astype(np.float32)
                assert hit.score == pytest.approx(maxsim(query, full), abs=1e-4)
            if n == 2:
                continue  # a query near no page: the code shortlist may differ at the tail
            brute = sorted(
                ids,
                key=lambda p: -maxsim(query, by_id[p].astype(np.float16).astype(np.float32)),
            )
            assert [h.page_id for h in exact][:5] == brute[:5]
    assert count_rows(store_url, PageVectorsRow) == 150  # full precision kept in SQL


def test_compact_only_scores_are_exact_over_decoded_codes(
    store_url: str, rng: np.random.Generator
) -> None:
    pages = corpus(rng, 150)
    with precomputed_store(store_url, DIM, config("compact-only")) as store:
        ids = store.add_pages([Page(vectors=v) for v in pages])
        books, rows = stored_codes(store_url)
        decoded = {p: books.decode(rows[p]) for p in ids}
        query = pages[11][:7]
        for hit in store.search(query, k=10):
            assert hit.score == pytest.approx(maxsim(query, decoded[hit.page_id]), abs=1e-4)
        exact = store.search(query, k=10, exhaustive=True)
        brute = sorted(ids, key=lambda p: (-maxsim(query, decoded[p]), p))
        assert [h.page_id for h in exact] == brute[:10]
        for hit in exact:
            assert hit.score == pytest.approx(maxsim(query, decoded[hit.page_id]), abs=1e-4)
    # No full-precision copy anywhere in SQL: the code rows are all there is.
    assert count_rows(store_url, PageVectorsRow) == 0
    assert count_rows(store_url, PageCodesRow) == 150


@pytest.mark.parametrize("tier", TIERS)
def test_upsert_replaces_codes(store_url: str, rng: np.random.Generator, tier: str) -> None:
    first, second = corpus(rng, 2)
    with precomputed_store(store_url, DIM, config(tier)) as store:
        store.add_pages([Page(vectors=v) for v in corpus(rng, 60)])
        (pid,) = store.upsert_pages([Page(vectors=first, external_id="x")])
        (again,) = store.upsert_pages([Page(vectors=second, external_id="x")])
        assert again == pid
        assert count_rows(store_url, PageCodesRow) == 61
        assert store.search(second[:5], k=1)[0].page_id == pid


@pytest.mark.parametrize("tier", TIERS)
def test_codebooks_are_versioned_as_the_store_grows(
    store_url: str, rng: np.random.Generator, tier: str
) -> None:
    early = corpus(rng, 20)
    with precomputed_store(store_url, DIM, config(tier)) as store:
        early_ids = store.add_pages([Page(vectors=v) for v in early])
        books, rows = stored_codes(store_url)
        assert len(books) == 1
        before = {p: rows[p].copy() for p in early_ids}
        store.add_pages([Page(vectors=v) for v in corpus(rng, 100)])  # 6x the tokens
        books, rows = stored_codes(store_url)
        assert len(books) == 2
        assert books.books[1].first_id == books.books[0].n_centroids
        for p in early_ids:  # early pages keep their version-1 codes, still searchable
            np.testing.assert_array_equal(rows[p], before[p])
        assert store.search(early[4][:6], k=1)[0].page_id == early_ids[4]
    with precomputed_store(store_url, DIM) as store:
        assert store.stats().index["codebooks"] == 2
        assert store.search(early[9][:6], k=1)[0].page_id == early_ids[9]


@pytest.mark.parametrize("tier", TIERS)
def test_the_recorded_tier_refuses_a_conflicting_reopen(
    store_url: str, rng: np.random.Generator, tier: str
) -> None:
    with precomputed_store(store_url, DIM, config(tier)) as store:
        store.add_pages([Page(vectors=v) for v in corpus(rng, 10)])
    with pytest.raises(InvalidInputError, match="tier"):
        precomputed_store(store_url, DIM, StoreConfig(storage=StorageConfig(tier="full")))
    other = "compact-only" if tier == "compact" else "compact"
    with pytest.raises(InvalidInputError, match="tier"):
        precomputed_store(store_url, DIM, StoreConfig(storage=StorageConfig(tier=other)))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="compact_bits"):
        precomputed_store(
            store_url, DIM, StoreConfig(storage=StorageConfig(tier=tier, compact_bits=4))
        )  # type: ignore[arg-type]
    with precomputed_store(store_url, DIM, StoreConfig(search=SearchConfig(n_rerank=8))) as store:
        assert store.config.storage.tier == tier  # query-time settings still change freely


def test_a_full_store_stays_full(tmp_path: Path, rng: np.random.Generator) -> None:
    url = str(tmp_path / "full.db")
    with precomputed_store(url, DIM) as store:
        store.add_pages([Page(vectors=v) for v in corpus(rng, 5)])
        assert store.config.storage.tier == "full"
    assert count_rows(url, PageCodesRow) == 0
    with pytest.raises(InvalidInputError, match="tier"):
        precomputed_store(url, DIM, StoreConfig(storage=StorageConfig(tier="compact")))


def test_compact_only_page_vectors_are_the_decoded_codes(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    url = str(tmp_path / "only.db")
    pages = corpus(rng, 40)
    with precomputed_store(url, DIM, config("compact-only")) as store:
        ids = store.add_pages([Page(vectors=v) for v in pages])
        books, rows = stored_codes(url)
        np.testing.assert_array_equal(store.page_vectors(ids[3]), books.decode(rows[ids[3]]))
        # New codebooks code residuals by pq and decode to unit length, as stored tokens are.
        assert [(b.kind, b.unit) for b in books.books] == [("pq", True)]
        np.testing.assert_allclose(np.linalg.norm(store.page_vectors(ids[3]), axis=1), 1, atol=1e-5)
        assert store.stats().vector_dtype == "none"
        with pytest.raises(InvalidInputError, match="not supported"):
            store.reencode("current")


def test_compact_keeps_full_page_vectors(tmp_path: Path, rng: np.random.Generator) -> None:
    url = str(tmp_path / "compact.db")
    pages = corpus(rng, 40)
    with precomputed_store(url, DIM, config("compact")) as store:
        ids = store.add_pages([Page(vectors=v) for v in pages])
        np.testing.assert_array_equal(
            store.page_vectors(ids[3]), pages[3].astype(np.float16).astype(np.float32)
        )
        assert store.stats().vector_dtype == "float16"


@pytest.mark.parametrize("tier", TIERS)
def test_another_writer_is_caught_up_with_its_codebooks(
    store_url: str, rng: np.random.Generator, tier: str
) -> None:
    early, late = corpus(rng, 10), corpus(rng, 80)
    with precomputed_store(store_url, DIM, config(tier)) as reader:
        reader.add_pages([Page(vectors=v) for v in early])
        assert reader.stats().index["codebooks"] == 1
        with precomputed_store(store_url, DIM) as writer:
            late_ids = writer.add_pages([Page(vectors=v) for v in late])  # trains version 2
        # The reader's index catches up from the change log and loads version 2.
        assert reader.search(late[17][:6], k=1)[0].page_id == late_ids[17]
        assert reader.stats().index["codebooks"] == 2


def blob_sizes(url: str) -> dict[int, tuple[int, int]]:
    """Page id -> (tokens, stored code bytes)."""
    engine = create_engine(to_url(url))
    try:
        with Session(engine) as session:
            query = select(PageCodesRow.page_id, PageCodesRow.n_tokens, PageCodesRow.data)
            return {int(p): (int(n), len(d)) for p, n, d in session.execute(query)}
    finally:
        engine.dispose()


@pytest.mark.parametrize("tier", TIERS)
def test_codes_are_stored_with_two_byte_ids(
    store_url: str, rng: np.random.Generator, tier: str
) -> None:
    with precomputed_store(store_url, DIM, config(tier)) as store:
        store.add_pages([Page(vectors=v) for v in corpus(rng, 30)])
    sizes = blob_sizes(store_url)
    assert len(sizes) == 30
    for n, size in sizes.values():
        assert size == n * stored_code_bytes(DIM, 2) == n * (2 + DIM * 2 // 8)


@pytest.mark.parametrize("tier", TIERS)
def test_a_store_written_with_four_byte_ids_still_reads(
    store_url: str, rng: np.random.Generator, tier: str
) -> None:
    pages = corpus(rng, 60)
    with precomputed_store(store_url, DIM, config(tier)) as store:
        ids = store.add_pages([Page(vectors=v) for v in pages])
        before = [(h.page_id, h.score) for h in store.search(pages[7][:6], k=10)]
    # Rewrite every blob as stores written before the short ids did: uint32 ids.
    _, rows = stored_codes(store_url)
    engine = create_engine(to_url(store_url))
    try:
        with Session(engine) as session, session.begin():
            for page_id, held in rows.items():
                session.execute(
                    update(PageCodesRow)
                    .where(PageCodesRow.page_id == page_id)
                    .values(data=held.tobytes())
                )
    finally:
        engine.dispose()
    assert all(size == n * code_bytes(DIM, 2) for n, size in blob_sizes(store_url).values())
    with precomputed_store(store_url, DIM) as store:
        after = [(h.page_id, h.score) for h in store.search(pages[7][:6], k=10)]
        assert [p for p, _ in after] == [p for p, _ in before]
        np.testing.assert_allclose([s for _, s in after], [s for _, s in before], rtol=1e-6)
        if tier == "compact-only":
            np.testing.assert_array_equal(
                store.page_vectors(ids[3]),
                Codebooks(stored_codes(store_url)[0].books).decode(rows[ids[3]]),
            )
        # New writes beside the old rows use the short ids.
        (new_id,) = store.add_pages([Page(vectors=pages[7], external_id="again")])
        assert blob_sizes(store_url)[new_id][1] == len(pages[7]) * stored_code_bytes(DIM, 2)
        assert new_id in {h.page_id for h in store.search(pages[7][:6], k=2)}


@pytest.mark.parametrize("tier", TIERS)
def test_pages_whose_centroid_ids_pass_65535_keep_four_byte_ids(
    store_url: str, rng: np.random.Generator, tier: str
) -> None:
    early, late = corpus(rng, 20), corpus(rng, 20)
    with precomputed_store(store_url, DIM, config(tier)) as store:
        early_ids = store.add_pages([Page(vectors=v) for v in early])
    # A store grown past 65,536 centroids: a wide version 2 (its centroids stand in for
    # a real one's; no page is coded with it) and a version 3 whose ids start at 65,536
    # + K1, trained for a store large enough that these writes train nothing more.
    books, _ = stored_codes(store_url)
    first = books.books[0]
    wide = Codebook(
        2,
        first.n_centroids,
        2,
        np.ascontiguousarray(np.tile(first.centroids, ((1 << 16) // first.n_centroids, 1))),
        first.cutoffs,
        first.weights,
        first.trained_tokens,
    )
    third = train(
        np.concatenate(late),
        2,
        version=3,
        first_id=wide.first_id + wide.n_centroids,
        n_centroids=8,
        trained_tokens=10**9,
    )
    engine = create_engine(to_url(store_url))
    try:
        with Session(engine) as session, session.begin():
            for book in (wide, third):
                session.execute(insert(CodebookRow), [codebook_row(book)])
    finally:
        engine.dispose()
    with precomputed_store(store_url, DIM) as store:
        late_ids = store.add_pages([Page(vectors=v) for v in late])
        sizes = blob_sizes(store_url)
        for p in late_ids:  # ids past 65,535: stored as uint32
            n, size = sizes[p]
            assert size == n * code_bytes(DIM, 2)
        for p in early_ids:  # version-1 pages keep their short ids
            n, size = sizes[p]
            assert size == n * stored_code_bytes(DIM, 2)
        books, rows = stored_codes(store_url)
        assert len(books) == 3
        assert books.centroid_ids(rows[late_ids[0]]).min() >= 1 << 16
        assert store.search(late[5][:6], k=1)[0].page_id == late_ids[5]
        assert store.search(early[5][:6], k=1)[0].page_id == early_ids[5]
    with precomputed_store(store_url, DIM) as store:  # both widths read at open
        assert store.search(late[11][:6], k=1)[0].page_id == late_ids[11]
        assert store.search(early[11][:6], k=1)[0].page_id == early_ids[11]
