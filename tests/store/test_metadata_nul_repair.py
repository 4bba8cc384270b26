"""Stores written before NUL was refused in metadata (issue 26): on PostgreSQL every
metadata filter failed with a driver error once such a page was in the store, and a page
read back could not be written back. Migration 0007 replaces each NUL with U+FFFD.

The old store is made the old way: rows written by plain SQL (as the old code's JSON
serializer wrote them), the schema stamped back to the revision before.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sqlalchemy import create_engine, text

from latestore import Page, PrecomputedVectors, Store
from latestore.migrations.runner import VERSION_TABLE
from latestore.store.sql import to_url

DIM = 8
ENCODER = PrecomputedVectors(dim=DIM)

OLD = {
    2: {"k": "a\x00b", "year": 2021, "deep": ["x\x00", {"z\x00": "\x00"}]},
    # An escaped backslash before "u0000": no NUL, and it must come back unchanged.
    3: {"k": "\\u0000 literally", "year": 2022},
}


def vectors(i: int) -> np.ndarray:
    return np.random.default_rng(i).standard_normal((3, DIM)).astype(np.float32)


def old_store(url: str, extra_keys: dict[str, str] | None = None) -> None:
    with Store.open(url, ENCODER) as store:
        store.add_pages(
            [
                Page(vectors=vectors(i), external_id=f"p{i}", metadata={"k": "v", "year": 2020})
                for i in range(1, 6)
            ]
        )
    engine = create_engine(to_url(url))
    try:
        with engine.begin() as conn:
            for page_id, metadata in OLD.items():
                conn.execute(
                    text("UPDATE ls_pages SET metadata = :m WHERE id = :i").bindparams(
                        m=json.dumps(metadata), i=page_id
                    )
                    if conn.dialect.name == "sqlite"
                    else text("UPDATE ls_pages SET metadata = CAST(:m AS json) WHERE id = :i"),
                    {"m": json.dumps(metadata), "i": page_id},
                )
            for key, kinds in (extra_keys or {}).items():
                conn.execute(
                    text("INSERT INTO ls_metadata_keys (key, kinds) VALUES (:k, :v)"),
                    {"k": key, "v": kinds},
                )
            # Back to the schema 0006 left: 0007 changes data only, 0008 adds a column.
            conn.execute(text("ALTER TABLE ls_pages DROP COLUMN window_rows"))
            conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0006_encoder_build'"))
    finally:
        engine.dispose()


def ids(store: Store, spec: dict[str, Any]) -> list[int]:
    return sorted(store.page_ids(spec))


def test_an_old_store_with_nul_in_metadata_filters_reads_and_updates(store_url: str) -> None:
    old_store(store_url)
    with Store.open(store_url, ENCODER) as store:  # migrates to 0007
        # Filters on every key work again (PostgreSQL failed each one before).
        assert ids(store, {"year": 2021}) == [2]
        assert ids(store, {"year": {"$gte": 2021}}) == [2, 3]
        assert ids(store, {"k": "v"}) == [1, 4, 5]
        assert ids(store, {"k": {"$ne": "v"}}) == [2, 3]
        assert ids(store, {"k": "a\ufffdb"}) == [2]
        assert ids(store, {"k": "a\x00b"}) == []  # NUL matches nothing, as on any store
        hits = store.search(vectors(2), k=2, filter={"k": {"$in": ["a\ufffdb", "v"]}})
        assert hits[0].page_id == 2
        assert store.delete_where({"year": 1999}) == 0
        # Read back: the NULs are replaced, everything else is as it was.
        assert store.get(2).metadata == {
            "k": "a\ufffdb",
            "year": 2021,
            "deep": ["x\ufffd", {"z\ufffd": "\ufffd"}],
        }
        assert store.get(3).metadata == OLD[3]
        assert store.get(1).metadata == {"k": "v", "year": 2020}
        # ... and written back as read.
        page = store.get(2)
        store.upsert_pages(
            [Page(vectors=vectors(2), external_id="p2", metadata={**page.metadata, "year": 2030})]
        )
        assert ids(store, {"year": 2030}) == [2]
        assert store.delete_where({"k": "a\ufffdb"}) == 1
        assert store.count() == 4


def test_a_top_level_key_with_nul_is_known_by_its_new_name(tmp_path: Any) -> None:
    """Only SQLite could hold such a key in ls_metadata_keys (PostgreSQL refused the
    whole write): it is renamed there too, so a filter on it is not an unknown field."""
    url = str(tmp_path / "store.db")
    OLD[4] = {"bad\x00key": 1, "year": 2023}
    try:
        old_store(url, extra_keys={"bad\x00key": "number"})
    finally:
        del OLD[4]
    with Store.open(url, ENCODER) as store:
        assert ids(store, {"bad\ufffdkey": 1}) == [4]
        assert ids(store, {"bad\ufffdkey": {"$gt": 0}}) == [4]
