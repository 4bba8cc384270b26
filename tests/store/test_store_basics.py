"""Store lifecycle, add/search/delete/upsert, reopen, on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latestore import (
    IndexConfig,
    MemoryConfig,
    Page,
    PrecomputedVectors,
    SearchConfig,
    SearchTuning,
    StorageConfig,
    Store,
    StoreConfig,
)
from latestore.errors import (
    DimensionMismatchError,
    DuplicateExternalIdError,
    EncoderMismatchError,
    InvalidInputError,
    PageNotFoundError,
    StoreClosedError,
    UnknownFilterFieldError,
)
from tests.helpers import SMALL_IVF, precomputed_store
from tests.store.helpers import clustered_pages, query_from

DIM = 32


# Small thresholds so these tests exercise the trained IVF path, not only flat.
def open_store(path: str | Path, **kwargs: object) -> Store:
    config = kwargs.pop("config", SMALL_IVF)
    return precomputed_store(path, DIM, config, **kwargs)  # type: ignore[arg-type]


def mean_overlap(approx: list, exact: list, k: int) -> float:  # type: ignore[type-arg]
    """Mean |top-k(approx) ∩ top-k(exact)| / k over queries."""
    pairs = zip(approx, exact, strict=True)
    return float(np.mean([len(set(ids_of(a)) & set(ids_of(e))) / k for a, e in pairs]))


def ids_of(hits: list) -> list[int]:  # type: ignore[type-arg]
    return [h.page_id for h in hits]


def test_add_search_get_count(store_url: str, rng: np.random.Generator) -> None:
    pages, centres = clustered_pages(rng, 400)
    with open_store(store_url) as store:
        ids = store.add_pages(pages)
        assert ids == list(range(1, 401))
        assert store.count() == 400
        assert store.stats().index["kind"] == "ivf"
        query = query_from(rng, centres)
        hits = store.search(query, k=10)
        assert len(hits) == 10
        assert [h.rank for h in hits] == list(range(1, 11))
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        top = store.get(hits[0].page_id)
        assert top.external_id == hits[0].external_id
        assert top.metadata == hits[0].metadata
        assert top.n_tokens == len(pages[hits[0].page_id - 1].vectors)  # type: ignore[arg-type]


def test_scores_are_exact_maxsim(store_url: str, rng: np.random.Generator) -> None:
    pages, centres = clustered_pages(rng, 300)
    query = query_from(rng, centres)
    with open_store(store_url) as store:
        store.add_pages(pages)
        hits = store.search(query, k=20)
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    for hit in hits:
        vectors = np.asarray(pages[hit.page_id - 1].vectors, dtype=np.float64)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors.astype(np.float16).astype(np.float64)  # stored as float16
        expected = (q.astype(np.float64) @ vectors.T).max(axis=1).sum()
        assert hit.score == pytest.approx(expected, rel=1e-5)


def test_approximate_matches_exhaustive_on_clustered_data(
    store_url: str, rng: np.random.Generator
) -> None:
    pages, centres = clustered_pages(rng, 600)
    with open_store(store_url) as store:
        store.add_pages(pages)
        queries = [query_from(rng, centres) for _ in range(20)]
        approx = store.search_many(queries, k=10)
        exact = store.search_many(queries, k=10, exhaustive=True)
    assert mean_overlap(approx, exact, 10) >= 0.95


def test_batched_search_equals_single(store_url: str, rng: np.random.Generator) -> None:
    pages, centres = clustered_pages(rng, 200)
    queries = [query_from(rng, centres) for _ in range(5)]
    with open_store(store_url) as store:
        store.add_pages(pages)
        batched = store.search_many(queries, k=7)
        singles = [store.search(q, k=7) for q in queries]
    assert [ids_of(b) for b in batched] == [ids_of(s) for s in singles]


def test_reopen_returns_identical_results(store_url: str, rng: np.random.Generator) -> None:
    pages, centres = clustered_pages(rng, 500)
    queries = [query_from(rng, centres) for _ in range(10)]
    with open_store(store_url) as store:
        store.add_pages(pages)
        before = [[(h.page_id, h.score) for h in r] for r in store.search_many(queries, k=10)]
    with open_store(store_url) as store:
        assert store.opened_from == "snapshot"
        after = [[(h.page_id, h.score) for h in r] for r in store.search_many(queries, k=10)]
    assert after == before


def test_delete_disappears_at_once_and_after_reopen(
    store_url: str, rng: np.random.Generator
) -> None:
    pages, centres = clustered_pages(rng, 300)
    query = query_from(rng, centres)
    with open_store(store_url) as store:
        store.add_pages(pages)
        top = ids_of(store.search(query, k=5))
        assert store.delete(top[:3]) == 3
        assert store.delete(top[:3]) == 0  # already gone: nothing more to delete
        after = ids_of(store.search(query, k=5))
        assert not set(top[:3]) & set(after)
        assert set(top[3:]) <= set(after)
        assert store.count() == 297
        with pytest.raises(PageNotFoundError):
            store.get(top[0])
    with open_store(store_url) as store:
        assert store.count() == 297
        assert not set(top[:3]) & set(ids_of(store.search(query, k=50, exhaustive=True)))
        assert not set(top[:3]) & set(ids_of(store.search(query, k=5)))


def test_ids_are_stable_and_never_reused(store_url: str, rng: np.random.Generator) -> None:
    pages, _ = clustered_pages(rng, 20)
    with open_store(store_url) as store:
        ids = store.add_pages(pages[:10])
        store.delete([ids[-1]])
        new_ids = store.add_pages(pages[10:12])
    assert new_ids == [11, 12]


def test_upsert_by_external_id_keeps_page_id(store_url: str, rng: np.random.Generator) -> None:
    pages, centres = clustered_pages(rng, 50)
    with open_store(store_url) as store:
        store.add_pages(pages)
        assert store.upsert_pages([pages[4]]) == [5]  # identical: no change at all
        change = store.stats().change_no
        store.upsert_pages([pages[4]])
        assert store.stats().change_no == change
        replacement = Page(
            vectors=query_from(rng, centres, 6), external_id="doc-4", metadata={"v": 2}
        )
        assert store.upsert_pages([replacement]) == [5]
        page = store.get(5)
        assert page.metadata == {"v": 2} and page.n_tokens == 6
        hits = store.search(replacement.vectors, k=1, exhaustive=True)  # type: ignore[arg-type]
        assert hits[0].page_id == 5
        with pytest.raises(DuplicateExternalIdError):
            store.add_pages([replacement], upsert=False)
    with open_store(store_url) as store:
        assert store.get(5).n_tokens == 6
        assert store.count() == 50


def test_duplicate_external_ids_in_one_batch_write_nothing(
    store_url: str, rng: np.random.Generator
) -> None:
    pages, _ = clustered_pages(rng, 3)
    twin = Page(vectors=pages[0].vectors, external_id="doc-0")
    with open_store(store_url) as store:
        with pytest.raises(DuplicateExternalIdError):
            store.add_pages([pages[0], twin])
        assert store.count() == 0


def test_bad_page_in_batch_writes_nothing(store_url: str, rng: np.random.Generator) -> None:
    pages, _ = clustered_pages(rng, 10)
    bad = Page(vectors=np.ones((3, DIM + 1), dtype=np.float32), external_id="bad")
    with open_store(store_url) as store:
        store.add_pages(pages[:2])
        with pytest.raises(DimensionMismatchError, match="dim 33"):
            store.add_pages([*pages[2:], bad])
        assert store.count() == 2
        assert store.stats().tokens == sum(len(p.vectors) for p in pages[:2])  # type: ignore[arg-type]


def test_k_larger_than_store_returns_everything(store_url: str, rng: np.random.Generator) -> None:
    pages, centres = clustered_pages(rng, 8)
    with open_store(store_url) as store:
        store.add_pages(pages)
        assert len(store.search(query_from(rng, centres), k=100)) == 8
        with pytest.raises(InvalidInputError):
            store.search(query_from(rng, centres), k=0)


def test_empty_store_search(store_url: str, rng: np.random.Generator) -> None:
    with open_store(store_url) as store:
        assert store.search(rng.standard_normal((3, DIM)), k=5) == []


def test_encoder_mismatch_is_refused(store_url: str, rng: np.random.Generator) -> None:
    pages, _ = clustered_pages(rng, 3)
    with open_store(store_url) as store:
        store.add_pages(pages)
    with pytest.raises(EncoderMismatchError, match="cannot be mixed"):
        Store.open(store_url, PrecomputedVectors(dim=DIM, name="another-model"))
    with pytest.raises(EncoderMismatchError):
        Store.open(store_url, PrecomputedVectors(dim=DIM * 2))


def test_build_time_config_is_fixed(store_url: str) -> None:
    with open_store(store_url):
        pass
    with pytest.raises(InvalidInputError, match="fixed"):
        open_store(store_url, config=StoreConfig(storage=StorageConfig(vector_dtype="float32")))
    with open_store(store_url, config=StoreConfig(search=SearchConfig(nprobe=64))) as store:
        assert store.config.search.nprobe == 64
        assert store.config.index.ivf_min_tokens == SMALL_IVF.index.ivf_min_tokens


def test_closed_store_refuses_work(store_url: str) -> None:
    store = open_store(store_url)
    store.close()
    store.close()
    with pytest.raises(StoreClosedError):
        store.count()


def test_in_memory_store(rng: np.random.Generator) -> None:
    pages, centres = clustered_pages(rng, 30)
    with precomputed_store(":memory:", DIM) as store:
        store.add_pages(pages)
        assert len(store.search(query_from(rng, centres), k=3)) == 3


def test_float32_store_and_search_overrides(store_url: str, rng: np.random.Generator) -> None:
    pages, centres = clustered_pages(rng, 300)
    config = SMALL_IVF.model_copy(update={"storage": StorageConfig(vector_dtype="float32")})
    with open_store(store_url, config=config) as store:
        store.add_pages(pages)
        query = query_from(rng, centres)
        tuning = SearchTuning(nprobe=64, k_per_token=256, n_rerank=300)
        wide = store.search(query, k=10, tuning=tuning)
        exact = store.search(query, k=10, exhaustive=True)
        assert ids_of(wide) == ids_of(exact)
        with pytest.raises(InvalidInputError):
            store.search(query, k=10, bogus=1)


def test_product_quantized_index_finds_the_exact_top(
    store_url: str, rng: np.random.Generator
) -> None:
    pages, centres = clustered_pages(rng, 250)
    config = StoreConfig(
        index=IndexConfig(ivf_min_tokens=2_000, ivf_codec="PQ", ivf_nlist=32),
        search=SearchConfig(exhaustive_max_tokens=0),
    )
    with open_store(store_url, config=config) as store:
        store.add_pages(pages)
        assert store.stats().index == {
            "kind": "ivf",
            "tokens": store.stats().tokens,
            "pages": 250,
            "nlist": 32,
            "codec": "PQ",
        }
        queries = [query_from(rng, centres) for _ in range(10)]
        approx = store.search_many(queries, k=5)
        exact = store.search_many(queries, k=5, exhaustive=True)
    assert mean_overlap(approx, exact, 5) >= 0.9


def test_memory_dtype_float32_gives_same_ranking(store_url: str, rng: np.random.Generator) -> None:
    pages, centres = clustered_pages(rng, 200)
    queries = [query_from(rng, centres) for _ in range(5)]
    with open_store(store_url) as store:
        store.add_pages(pages)
        half = store.search_many(queries, k=10)
    wide = SMALL_IVF.model_copy(update={"memory": MemoryConfig(memory_dtype="float32")})
    with open_store(store_url, config=wide) as store:
        assert store.stats().memory_dtype == "float32"
        full = store.search_many(queries, k=10)
    assert [ids_of(h) for h in half] == [ids_of(f) for f in full]
    for h_hits, f_hits in zip(half, full, strict=True):
        np.testing.assert_allclose([h.score for h in h_hits], [f.score for f in f_hits], rtol=1e-5)


def test_int8_store_reopens_identically_and_tracks_exhaustive(
    store_url: str, rng: np.random.Generator
) -> None:
    pages, centres = clustered_pages(rng, 300)
    queries = [query_from(rng, centres) for _ in range(8)]
    config = SMALL_IVF.model_copy(update={"storage": StorageConfig(vector_dtype="int8")})
    with precomputed_store(store_url, DIM, config=config) as store:
        store.add_pages(pages)
        assert store.stats().memory_dtype == "int8"
        approx = store.search_many(queries, k=10)
        before = [[(h.page_id, h.score) for h in r] for r in approx]
        exact = store.search_many(queries, k=10, exhaustive=True)
    with precomputed_store(store_url, DIM, config=config) as store:
        after = [[(h.page_id, h.score) for h in r] for r in store.search_many(queries, k=10)]
    assert after == before
    assert mean_overlap(approx, exact, 10) >= 0.9


def test_page_ids_and_delete_by_filter(db_path: Path, rng: np.random.Generator) -> None:
    pages, _ = clustered_pages(rng, 30, dim=16)
    with Store.open(db_path, PrecomputedVectors(dim=16)) as store:
        ids = store.add_pages(pages)
        assert store.page_ids() == sorted(ids)
        german = store.page_ids({"lang": "de"})
        assert german == [ids[i] for i in range(30) if i % 3 == 1]
        with pytest.raises(InvalidInputError):
            store.delete_where({})  # never "delete everything" by accident
        with pytest.raises(UnknownFilterFieldError):
            store.delete_where({"colour": "red"})
        assert store.count() == 30
        # the selections are united: a filter plus an id outside it
        with pytest.warns(DeprecationWarning, match="delete_where"):
            removed = store.delete([ids[0]], filter={"lang": "de", "year": {"$gte": 2010}})
        expected_gone = {ids[0]} | {ids[i] for i in range(30) if i % 3 == 1 and i % 25 >= 10}
        assert removed == len(expected_gone)
        assert set(store.page_ids()) == set(ids) - expected_gone
        hits = store.search(pages[4].vectors, k=30, filter={"lang": "de"})
        assert {h.page_id for h in hits} == set(german) - expected_gone


def test_largest_page_number_is_stored_on_every_backend(store_url: str) -> None:
    # Issue 13 follow-up: 2**31 reached PostgreSQL's INTEGER column as a raw error;
    # Page now refuses it, and the largest accepted number round-trips.
    with Store.open(store_url, PrecomputedVectors(dim=4)) as store:
        page = Page(vectors=np.eye(2, 4, dtype=np.float32), page_number=2**31 - 1)
        (page_id,) = store.add_pages([page])
        assert store.get(page_id).page_number == 2**31 - 1
