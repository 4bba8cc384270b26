"""Calls that take more ids than one SQL statement may bind.

PostgreSQL binds at most 65,535 parameters per statement. SQLite's compiled default is
32,766 (since 3.32); Debian's build raises it to 250,000, so the SQLite variant sets
each connection back to the default, as a user's stock build has it, and needs half
as many pages to go past it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError

from latestore import Page, Store
from latestore.errors import FilterError
from latestore.store.filters import MAX_BOUND_VALUES
from tests.helpers import precomputed_store

SQLITE_DEFAULT_VARIABLES = 32_766
# Past each backend's limit on bound parameters in one statement.
MANY = {"sqlite": 33_000, "postgresql": 65_600}
DIM = 4


def _pages(n: int, group: int) -> list[Page]:
    rng = np.random.default_rng(group)
    vectors = rng.standard_normal((n, 1, DIM)).astype(np.float32)
    return [
        Page(vectors=vectors[i], external_id=f"p{i}", metadata={"group": group}) for i in range(n)
    ]


def _stock_sqlite_limit(connection: Any, _record: Any) -> None:
    if isinstance(connection, sqlite3.Connection):
        connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, SQLITE_DEFAULT_VARIABLES)


@pytest.fixture
def big_store(store_url: str) -> Iterator[tuple[Store, int]]:
    backend = "postgresql" if store_url.startswith("postgresql") else "sqlite"
    event.listen(Engine, "connect", _stock_sqlite_limit)
    try:
        if backend == "sqlite":  # the limit is in force on every new connection
            probe = create_engine("sqlite://")
            with probe.connect() as conn, pytest.raises(OperationalError, match="variables"):
                conn.exec_driver_sql(
                    "SELECT " + ",".join(["?"] * (SQLITE_DEFAULT_VARIABLES + 1)),
                    tuple(range(SQLITE_DEFAULT_VARIABLES + 1)),
                )
            probe.dispose()
        store = precomputed_store(store_url, DIM)
        store.add_pages(_pages(MANY[backend], 0))
        yield store, MANY[backend]
    finally:
        event.remove(Engine, "connect", _stock_sqlite_limit)


@pytest.mark.slow
def test_get_upsert_and_delete_by_external_id_past_the_parameter_limit(
    big_store: tuple[Store, int],
) -> None:
    store, many = big_store
    with store:
        ids = store.page_ids()
        assert len(ids) == many
        got = store.get_many(ids)
        assert [p.page_id for p in got] == ids
        # Every page changed: one lookup, one replacement of all their vectors.
        assert store.upsert_pages(_pages(many, 1)) == ids
        assert store.page_ids({"group": 1}) == ids
        assert store.delete(external_ids=[f"p{i}" for i in range(many)]) == many
        assert store.count() == 0 == store.stats().pages


@pytest.mark.slow
def test_delete_by_ids_and_by_filter_past_the_parameter_limit(
    big_store: tuple[Store, int],
) -> None:
    store, many = big_store
    with store:
        ids = store.page_ids()
        assert store.delete([*ids[:100], 10**6]) == 100
        assert store.delete_where({"group": 0}) == many - 100
        assert store.count() == 0 == store.stats().pages
        fresh = store.add_pages(_pages(many, 2))
        assert store.delete(fresh) == many
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
