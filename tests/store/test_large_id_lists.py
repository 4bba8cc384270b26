"""Calls that take more ids than one SQL statement may bind (PostgreSQL: 65,535)."""

from __future__ import annotations

import numpy as np
import pytest

from latestore import Page, Store
from latestore.errors import FilterError
from latestore.store.filters import MAX_BOUND_VALUES
from tests.helpers import precomputed_store

# Past PostgreSQL's limit on bound parameters in one statement.
MANY = 65_600
DIM = 4


def _pages(n: int, group: int) -> list[Page]:
    rng = np.random.default_rng(group)
    vectors = rng.standard_normal((n, 1, DIM)).astype(np.float32)
    return [
        Page(vectors=vectors[i], external_id=f"p{i}", metadata={"group": group}) for i in range(n)
    ]


@pytest.fixture
def big_store(store_url: str) -> Store:
    store = precomputed_store(store_url, DIM)
    store.add_pages(_pages(MANY, 0))
    return store


@pytest.mark.slow
def test_get_upsert_and_delete_by_external_id_past_the_parameter_limit(
    big_store: Store,
) -> None:
    with big_store as store:
        ids = store.page_ids()
        assert len(ids) == MANY
        got = store.get_many(ids)
        assert [p.page_id for p in got] == ids
        # Every page changed: one lookup, one replacement of all their vectors.
        assert store.upsert_pages(_pages(MANY, 1)) == ids
        assert store.page_ids({"group": 1}) == ids
        assert store.delete(external_ids=[f"p{i}" for i in range(MANY)]) == MANY
        assert store.count() == 0 == store.stats().pages


@pytest.mark.slow
def test_delete_by_ids_and_by_filter_past_the_parameter_limit(big_store: Store) -> None:
    with big_store as store:
        ids = store.page_ids()
        assert store.delete([*ids[:100], 10**6]) == 100
        assert store.delete_where({"group": 0}) == MANY - 100
        assert store.count() == 0 == store.stats().pages
        fresh = store.add_pages(_pages(MANY, 2))
        assert store.delete(fresh) == MANY
        assert store.count() == 0 == store.stats().pages


def test_filter_with_too_many_values_is_refused(store_url: str) -> None:
    with precomputed_store(store_url, DIM) as store:
        store.add_pages(_pages(3, 0))
        values = list(range(10_000))
        spec = {"$or": [{"page_id": {"$in": values}} for _ in range(4)]}
        assert 4 * len(values) > MAX_BOUND_VALUES
        with pytest.raises(FilterError, match="values in all"):
            store.page_ids(spec)
        with pytest.raises(FilterError, match="values in all"):
            store.delete_where(spec)
        assert store.count() == 3
        assert store.page_ids({"page_id": {"$in": values}}) == [1, 2, 3]


def test_long_or_and_in_lists_compile_on_every_backend(store_url: str) -> None:
    # SQLite refuses expression trees deeper than 1,000 levels, which a flat chain of
    # 1,000 ORs (or an IN written as ORs) used to reach.
    with precomputed_store(store_url, DIM) as store:
        ids = store.add_pages(_pages(5, 0))
        assert store.page_ids({"$or": [{"page_id": i} for i in range(-990, 9)]}) == ids
        assert store.page_ids({"$and": [{"page_id": {"$lt": 10 + i}} for i in range(999)]}) == ids
        assert store.page_ids({"page_id": {"$in": list(range(10_000))}}) == ids
        assert store.page_ids({"page_id": {"$nin": list(range(3, 10_000))}}) == ids[:2]
        spec = {"$not": {"$or": [{"group": 0}, {"group": {"$in": list(range(1, 5000))}}]}}
        assert store.page_ids(spec) == []
