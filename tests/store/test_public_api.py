"""The public Store API: reads, listing, vectors, typed stats, error context, and the
deprecation path of every changed call. On SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from latestore import Page, SearchHit, StoredPage, StoreStats
from latestore.errors import (
    DimensionMismatchError,
    DuplicateExternalIdError,
    InvalidInputError,
    PageNotFoundError,
    StoreClosedError,
    StoreCorruptionError,
    UnknownFilterFieldError,
)
from latestore.store.sql import to_url
from tests.helpers import precomputed_store, unit_vectors

DIM = 8


def pages(rng: np.random.Generator, n: int) -> list[Page]:
    return [
        Page(
            vectors=unit_vectors(rng, 3 + i % 4, DIM),
            text=f"page {i}",
            external_id=f"e{i}",
            document_id=f"doc-{i % 3}",
            page_number=i,
            metadata={"i": i, "even": i % 2 == 0},
            image_path=Path(f"/scans/{i}.png") if i == 0 else None,
        )
        for i in range(n)
    ]


def test_get_and_get_many_and_external_ids(store_url: str, rng: np.random.Generator) -> None:
    with precomputed_store(store_url, DIM) as store:
        ids = store.add_pages(pages(rng, 6))
        one = store.get(ids[2])
        assert isinstance(one, StoredPage) and one.external_id == "e2" and one.n_tokens == 5
        assert not isinstance(one, SearchHit)
        assert [p.page_id for p in store.get_many([ids[4], ids[1]])] == [ids[4], ids[1]]
        assert [p.page_id for p in store.get_by_external_ids(["e5", "e0"])] == [ids[5], ids[0]]
        assert store.get_by_external_id("e3").page_id == ids[3]
        with pytest.raises(PageNotFoundError) as missing:
            store.get_many([ids[0], 999, 1000])
        assert missing.value.page_ids == [999, 1000]
        with pytest.raises(PageNotFoundError) as missing_ext:
            store.get_by_external_ids(["e1", "nope"])
        assert missing_ext.value.external_ids == ["nope"]
        with pytest.raises(InvalidInputError):
            store.get("1")  # type: ignore[call-overload]


def test_pages_lists_in_sql_with_filter_document_and_paging(
    store_url: str, rng: np.random.Generator
) -> None:
    with precomputed_store(store_url, DIM) as store:
        ids = store.add_pages(pages(rng, 10))
        assert [p.page_id for p in store.pages()] == ids
        assert [p.page_id for p in store.pages(limit=3, offset=2)] == ids[2:5]
        assert [p.page_number for p in store.pages({"even": True}, document_id="doc-0")] == [0, 6]
        assert store.pages({"i": {"$gte": 100}}) == []
        with pytest.raises(UnknownFilterFieldError) as bad:
            store.pages({"colour": "red"})
        assert bad.value.field == "colour"
        for wrong in ({"limit": 0}, {"limit": "3"}, {"offset": -1}):
            with pytest.raises(InvalidInputError):
                store.pages(**wrong)  # type: ignore[arg-type]


def test_page_vectors_are_the_stored_ones(store_url: str, rng: np.random.Generator) -> None:
    given = pages(rng, 3)
    with precomputed_store(store_url, DIM) as store:
        ids = store.add_pages(given)
        got = store.page_vectors(ids[1])
        assert got.dtype == np.float32 and got.shape == given[1].vectors.shape  # type: ignore[union-attr]
        # float16 in SQL: equal to the given unit vectors up to half precision.
        np.testing.assert_allclose(got, given[1].vectors, atol=1e-3)  # type: ignore[arg-type]
        hit = store.search(got, k=1)[0]
        assert hit.page_id == ids[1]
        with pytest.raises(PageNotFoundError):
            store.page_vectors(12345)


def test_add_refuses_or_warns_and_upsert_replaces(store_url: str, rng: np.random.Generator) -> None:
    first = pages(rng, 3)
    with precomputed_store(store_url, DIM) as store:
        ids = store.add_pages(first)
        changed = first[1].model_copy(update={"metadata": {"i": 100}})
        with pytest.raises(DuplicateExternalIdError) as taken:
            store.add_pages([changed], upsert=False)
        assert taken.value.external_ids == ["e1"]
        assert store.get(ids[1]).metadata["i"] == 1
        with pytest.warns(DeprecationWarning, match="upsert_pages"):
            assert store.add_pages([changed]) == [ids[1]]
        assert store.upsert_pages([first[1]]) == [ids[1]]
        assert store.get(ids[1]).metadata["i"] == 1


def test_delete_by_ids_and_delete_where(store_url: str, rng: np.random.Generator) -> None:
    with precomputed_store(store_url, DIM) as store:
        ids = store.add_pages(pages(rng, 8))
        assert store.delete([ids[0]], external_ids=["e1"]) == 2
        assert store.delete_where({"even": True}) == 3  # 2, 4, 6
        with pytest.raises(InvalidInputError):
            store.delete_where({})
        with pytest.warns(DeprecationWarning, match="delete_where"):
            assert store.delete(filter={"i": 3}) == 1
        assert [p.external_id for p in store.pages()] == ["e5", "e7"]


def test_search_one_and_many_and_the_deprecated_list_form(
    store_url: str, rng: np.random.Generator
) -> None:
    given = pages(rng, 5)
    with precomputed_store(store_url, DIM) as store:
        store.add_pages(given)
        query = given[3].vectors
        hits = store.search(query, k=2)  # type: ignore[arg-type]
        assert hits[0].external_id == "e3" and hits[0].rank == 1
        many = store.search_many([query, given[0].vectors], k=1)  # type: ignore[list-item]
        assert [h[0].external_id for h in many] == ["e3", "e0"]
        assert many[1][0].image_path == Path("/scans/0.png")
        with pytest.warns(DeprecationWarning, match="search_many"):
            old = store.search([query], k=1)  # type: ignore[list-item]
        assert old[0][0].external_id == "e3"  # type: ignore[index]


def test_stats_is_typed_and_old_item_access_warns(store_url: str, rng: np.random.Generator) -> None:
    with precomputed_store(store_url, DIM) as store:
        store.add_pages(pages(rng, 4))
        stats = store.stats()
        assert isinstance(stats, StoreStats)
        assert (stats.pages, stats.tokens, stats.dim) == (4, 3 + 4 + 5 + 6, DIM)
        assert stats.device == "cpu"
        with pytest.warns(DeprecationWarning, match=r"\.pages"):
            assert stats["pages"] == 4
        with pytest.warns(DeprecationWarning):
            assert store.get(1).score == 0.0


def test_every_method_checks_for_a_closed_store(store_url: str, rng: np.random.Generator) -> None:
    store = precomputed_store(store_url, DIM)
    store.add_pages(pages(rng, 2))
    store.close()
    query = unit_vectors(rng, 2, DIM)
    calls = {
        "add_pages": lambda: store.add_pages(pages(rng, 1)),
        "upsert_pages": lambda: store.upsert_pages(pages(rng, 1)),
        "delete": lambda: store.delete([1]),
        "delete_where": lambda: store.delete_where({"i": 0}),
        "search": lambda: store.search(query),
        "search_many": lambda: store.search_many([query]),
        "page_ids": store.page_ids,
        "pages": store.pages,
        "get": lambda: store.get(1),
        "get_many": lambda: store.get_many([1]),
        "get_by_external_id": lambda: store.get_by_external_id("e0"),
        "get_by_external_ids": lambda: store.get_by_external_ids(["e0"]),
        "page_vectors": lambda: store.page_vectors(1),
        "count": store.count,
        "image": lambda: store.image(1),
        "stats": store.stats,
        "reindex": store.reindex,
        "encoding": store.encoding,
    }
    for name, call in calls.items():
        with pytest.raises(StoreClosedError):
            call()
            pytest.fail(f"{name} ran on a closed store")
    assert store.closed


def test_error_context_for_dimensions(store_url: str, rng: np.random.Generator) -> None:
    with precomputed_store(store_url, DIM) as store:
        with pytest.raises(DimensionMismatchError) as wrong:
            store.add_pages([Page(vectors=unit_vectors(rng, 2, DIM + 1))])
        assert (wrong.value.expected, wrong.value.got) == (DIM, DIM + 1)
        assert wrong.value.context == {"expected": DIM, "got": DIM + 1}


def test_a_damaged_vector_in_sql_is_reported_as_store_corruption(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "s.db"
    with precomputed_store(path, DIM) as store:
        ids = store.add_pages(pages(rng, 3))
    engine = create_engine(to_url(path))
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE ls_page_vectors SET data = :d WHERE page_id = :p"),
            {"d": b"\x00" * 7, "p": ids[1]},
        )
    engine.dispose()
    # The persisted rank vectors are intact and open without reading SQL's copy; the
    # damage shows when the store reads vectors from SQL, as every rebuild does.
    shutil.rmtree(path.with_name(path.name + ".index"))
    with pytest.raises(StoreCorruptionError, match="damaged in the database") as damaged:
        precomputed_store(path, DIM)
    assert damaged.value.page_ids == [ids[1]]


def test_a_store_opened_without_its_index_writes_sql_and_loads_it_when_searched(
    store_url: str, rng: np.random.Generator
) -> None:
    given = pages(rng, 6)
    with precomputed_store(store_url, DIM) as store:
        ids = store.add_pages(given[:4])
    lazy = precomputed_store(store_url, DIM, load_index=False)
    try:
        assert not lazy._db.derived.loaded
        assert lazy.delete([ids[0]]) == 1
        new_ids = lazy.add_pages(given[4:])
        assert lazy.count() == 5 and lazy.get(new_ids[0]).external_id == "e4"
        assert not lazy._db.derived.loaded  # none of that needed the index
        hits = lazy.search(given[4].vectors, k=6)  # type: ignore[arg-type]
        assert lazy._db.derived.loaded
        assert hits[0].page_id == new_ids[0]
        assert ids[0] not in {h.page_id for h in hits} and len(hits) == 5
    finally:
        lazy.close()
    with precomputed_store(store_url, DIM) as reopened:  # and every process agrees
        assert reopened.stats().pages == 5


def test_encode_queries_gives_the_vectors_search_ranks_with(tmp_path: Path) -> None:
    from latestore import Store

    with Store.open(tmp_path / "s.db") as store:
        store.add_pages(
            [Page(text=t) for t in ("wind tunnels for aircraft", "bread and butter", "jet nozzles")]
        )
        encoded = store.encode_queries(["aircraft wind tunnel", "butter"])
        assert [v.shape[1] for v in encoded] == [store.dim, store.dim]
        assert all(v.dtype == np.float32 for v in encoded)
        by_text = store.search_many(["aircraft wind tunnel", "butter"], k=3)
        by_vectors = store.search_many(encoded, k=3)
        assert [[(h.page_id, h.score) for h in hits] for hits in by_text] == [
            [(h.page_id, h.score) for h in hits] for hits in by_vectors
        ]
        for bad in ("one string, not a list", [np.zeros((2, store.dim))], ["   "]):
            with pytest.raises(InvalidInputError):
                store.encode_queries(bad)  # type: ignore[arg-type]


def test_writes_count_what_they_added_updated_and_left_unchanged(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    with precomputed_store(tmp_path / "s.db", DIM) as store:
        first = pages(rng, 4)
        ids = store.add_pages(first, upsert=False)
        assert ids == store.page_ids() and isinstance(ids, list)
        assert (ids.added, ids.updated, ids.unchanged) == (4, 0, 0)
        again = store.upsert_pages(first)
        assert again == ids and (again.added, again.updated, again.unchanged) == (0, 0, 4)
        changed = [
            first[0].model_copy(update={"metadata": {"i": 99}}),
            *first[1:],
            *pages(rng, 6)[4:],
        ]
        mixed = store.upsert_pages(changed)
        assert (mixed.added, mixed.updated, mixed.unchanged) == (2, 1, 3)
        streamed = store.upsert_pages(iter(changed), commit_every=2)
        assert streamed == mixed and (streamed.added, streamed.updated, streamed.unchanged) == (
            0,
            0,
            6,
        )
        assert "added=0, updated=0, unchanged=6" in repr(streamed)
