"""Metadata filters: compiled to SQL, applied before ranking."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import numpy as np
import pytest

from latestore import (
    IndexConfig,
    Page,
    PrecomputedVectors,
    SearchConfig,
    SearchTuning,
    Store,
    StoreConfig,
)
from latestore.errors import FilterError, UnknownFilterFieldError, UnknownFilterOperatorError
from tests.helpers import precomputed_store
from tests.store.helpers import clustered_pages, query_from

DIM = 32


@pytest.fixture
def store(store_url: str, rng: np.random.Generator) -> Iterator[Store]:
    pages, centres = clustered_pages(rng, 500)
    config = StoreConfig(
        index=IndexConfig(ivf_min_tokens=5_000, ivf_codec="SQ8"),
        search=SearchConfig(exhaustive_max_tokens=500),
    )
    with precomputed_store(store_url, DIM, config=config) as opened:
        opened.add_pages(pages)
        opened.centres = centres  # type: ignore[attr-defined]
        yield opened


def expected_ids(store: Store, predicate: object) -> set[int]:
    pages = store.get_many(range(1, store.count() + 1))
    return {p.page_id for p in pages if predicate(p)}  # type: ignore[operator]


CASES = [
    ({"lang": "de"}, lambda p: p.metadata["lang"] == "de"),
    ({"year": {"$gte": 2010, "$lt": 2013}}, lambda p: 2010 <= p.metadata["year"] < 2013),
    ({"lang": {"$in": ["fr", "de"]}}, lambda p: p.metadata["lang"] in ("fr", "de")),
    ({"lang": {"$nin": ["fr", "de"]}}, lambda p: p.metadata["lang"] not in ("fr", "de")),
    (
        {"document_id": "book-3", "page_number": {"$lte": 4}},
        lambda p: p.document_id == "book-3" and p.page_number <= 4,
    ),
    (
        {"$or": [{"lang": "en"}, {"year": 2001}]},
        lambda p: p.metadata["lang"] == "en" or p.metadata["year"] == 2001,
    ),
    (
        {"$and": [{"lang": {"$ne": "en"}}, {"$not": {"year": {"$gt": 2005}}}]},
        lambda p: p.metadata["lang"] != "en" and not p.metadata["year"] > 2005,
    ),
    ({"metadata.i": {"$in": [3, 30, 300]}}, lambda p: p.metadata["i"] in (3, 30, 300)),
    ({"external_id": "doc-7"}, lambda p: p.external_id == "doc-7"),
]


@pytest.mark.parametrize(("spec", "predicate"), CASES)
def test_filter_returns_only_matching_and_k_of_them(
    store: Store, rng: np.random.Generator, spec: dict, predicate: object
) -> None:  # type: ignore[type-arg]
    allowed = expected_ids(store, predicate)
    assert allowed
    query = query_from(rng, store.centres)  # type: ignore[attr-defined]
    k = 10
    hits = store.search(query, k=k, filter=spec)
    assert {h.page_id for h in hits} <= allowed
    assert len(hits) == min(k, len(allowed))
    exact = store.search(query, k=k, filter=spec, exhaustive=True)
    assert {h.page_id for h in exact} <= allowed
    assert len(exact) == min(k, len(allowed))


def test_selective_filter_still_returns_k(store: Store, rng: np.random.Generator) -> None:
    spec = {"year": 2003, "lang": "en"}
    allowed = expected_ids(
        store, lambda p: p.metadata["year"] == 2003 and p.metadata["lang"] == "en"
    )
    hits = store.search(query_from(rng, store.centres), k=len(allowed), filter=spec)  # type: ignore[attr-defined]
    assert {h.page_id for h in hits} == allowed


def test_broad_filter_on_ivf_path_returns_k(store: Store, rng: np.random.Generator) -> None:
    # 2/3 of the store: too many tokens for the exact shortcut, so FAISS runs with a selector.
    spec = {"lang": {"$ne": "fr"}}
    query = query_from(rng, store.centres)  # type: ignore[attr-defined]
    hits = store.search(query, k=50, filter=spec, tuning=SearchTuning(exhaustive_max_tokens=0))
    assert len(hits) == 50
    assert all(h.metadata["lang"] != "fr" for h in hits)


def test_no_match_gives_empty_list(store: Store, rng: np.random.Generator) -> None:
    assert store.search(query_from(rng, store.centres), k=5, filter={"lang": "xx"}) == []  # type: ignore[attr-defined]


def test_dates_and_created_at(store_url: str, rng: np.random.Generator) -> None:
    with Store.open(store_url, PrecomputedVectors(dim=8)) as s:
        s.add_pages(
            [
                Page(vectors=rng.standard_normal((2, 8)), metadata={"published": "2021-03-01"}),
                Page(vectors=rng.standard_normal((2, 8)), metadata={"published": "2023-07-15"}),
            ]
        )
        q = rng.standard_normal((2, 8))
        hits = s.search(q, k=5, filter={"published": {"$gte": date(2022, 1, 1)}})
        assert [h.metadata["published"] for h in hits] == ["2023-07-15"]
        assert len(s.search(q, k=5, filter={"created_at": {"$gte": "2000-01-01"}})) == 2


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"colour": "red"}, UnknownFilterFieldError),
        ({"lang": {"$regex": ".*"}}, UnknownFilterOperatorError),
        ({"$xor": [{"lang": "en"}]}, UnknownFilterOperatorError),
        ({"$or": []}, FilterError),
        ({"lang": {"$in": "en"}}, FilterError),
        ({"year": {"$gt": True}}, FilterError),
        ({"year": {"$gt": [1, 2]}}, FilterError),
        ({}, FilterError),
        ({"lang": "en'; DROP TABLE ls_pages; --"}, None),
        ({"lang' OR 1=1 --": "en"}, UnknownFilterFieldError),
    ],
)
def test_bad_filters_raise_typed_errors(
    store: Store, rng: np.random.Generator, spec: dict, error: type[Exception] | None
) -> None:  # type: ignore[type-arg]
    query = query_from(rng, store.centres)  # type: ignore[attr-defined]
    if error is None:  # an injection attempt in a value is just a value that matches nothing
        assert store.search(query, k=5, filter=spec) == []
    else:
        with pytest.raises(error):
            store.search(query, k=5, filter=spec)
    assert store.count() == 500


def test_non_ascii_metadata_keys_filter(store_url: str) -> None:
    # On SQLite the stored JSON escapes these keys (\u043a...); the filter used to
    # look up the unescaped key and silently match nothing.
    keys = ["ключ", "日本語", "emoji😀", "café"]
    vectors = np.eye(2, DIM, dtype=np.float32)
    with precomputed_store(store_url, DIM) as store:
        ids = store.add_pages(
            [
                Page(vectors=vectors, metadata={key: i for key in keys} | {"tag": f"v{i}"})
                for i in range(3)
            ]
            + [Page(vectors=vectors, metadata={"tag": "none"})]
        )
        for key in keys:
            assert store.page_ids({key: 1}) == [ids[1]]
            assert store.page_ids({key: {"$exists": True}}) == ids[:3]
            assert store.page_ids({key: {"$exists": False}}) == [ids[3]]
            assert store.page_ids({f"metadata.{key}": {"$gte": 1}}) == ids[1:3]
            assert store.page_ids({key: {"$in": [0, 2]}}) == [ids[0], ids[2]]
            hits = store.search(vectors, k=10, filter={key: {"$ne": 0}}, exhaustive=True)
            assert sorted(h.page_id for h in hits) == ids[1:]
        assert store.delete_where({"ключ": 2}) == 1
        assert store.page_ids({"日本語": {"$exists": True}}) == ids[:2]
