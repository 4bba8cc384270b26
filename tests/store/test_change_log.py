"""The change log stays bounded, and an index older than the kept log reloads from SQL."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, func, select

from latestore import MaintenanceConfig, Page, PrecomputedVectors, Store, StoreConfig
from latestore.store.schema import ChangeRow, StoreRow
from latestore.store.sql import to_url
from latestore.store.sync import SNAPSHOT_NAME, IndexSync
from tests.store.helpers import clustered_pages

DIM = 32
ENCODER = PrecomputedVectors(dim=DIM)


def log_state(url: str) -> tuple[int, int]:
    """(rows in the change log, pruned_through), read straight from SQL."""
    engine = create_engine(to_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(ChangeRow)).scalar_one()
            pruned = conn.execute(select(StoreRow.pruned_through)).scalar_one()
            return int(rows), int(pruned)
    finally:
        engine.dispose()


def top_ids(store: Store, query: np.ndarray, k: int = 5) -> list[int]:
    return [h.page_id for h in store.search(query, k=k)]


def test_log_is_bounded_and_reopen_still_uses_the_snapshot(
    db_path: Path, rng: np.random.Generator
) -> None:
    pages, _ = clustered_pages(rng, 60, dim=DIM)
    config = StoreConfig(
        maintenance=MaintenanceConfig(
            change_log_keep=4, snapshot_every_tokens=1, snapshot_every_fraction=0
        )
    )
    with Store.open(db_path, ENCODER, config=config) as store:
        for start in range(0, 60, 3):  # 20 write transactions of 3 pages
            store.add_pages(pages[start : start + 3])
        store.delete(external_ids=["doc-0", "doc-1"])
        rows, pruned = log_state(str(db_path))
        # keep 4 transactions, pruned in steps of keep // 4 = 1: at most 5 x 3 rows left
        assert pruned >= 21 - 5
        assert rows <= 5 * 3
        assert store.stats().change_log_pruned_through == pruned
        query = pages[30].vectors
        before = store.search(query, k=5)
    with Store.open(db_path, ENCODER, config=config) as store:
        assert store.opened_from == "snapshot"
        assert store.count() == 58
        assert store.search(query, k=5) == before


def test_log_is_kept_while_no_snapshot_covers_it(tmp_path: Path, rng: np.random.Generator) -> None:
    pages, _ = clustered_pages(rng, 12, dim=DIM)
    path = tmp_path / "store.db"
    # the default snapshot threshold (250k tokens) is never reached here
    with Store.open(
        path, ENCODER, config=StoreConfig(maintenance=MaintenanceConfig(change_log_keep=0))
    ) as store:
        for page in pages:
            store.add_pages([page])
        assert log_state(str(path)) == (12, 0)


def test_a_reader_behind_the_pruned_log_reloads_and_sees_every_change(
    store_url: str, rng: np.random.Generator
) -> None:
    pages, _ = clustered_pages(rng, 40, dim=DIM)
    config = StoreConfig(
        maintenance=MaintenanceConfig(
            change_log_keep=0, snapshot_every_tokens=1, snapshot_every_fraction=0
        )
    )
    with Store.open(store_url, ENCODER, config=config) as writer:
        ids = writer.add_pages(pages[:20])
        reader = Store.open(store_url, ENCODER, config=config)
        try:
            assert len(reader.search(pages[5].vectors, k=3)) == 3  # reader is at change 1
            writer.delete(ids[:5])
            writer.add_pages(pages[20:30])
            writer.add_pages(pages[30:])
            _, pruned = log_state(store_url)
            assert pruned >= 3  # the log no longer holds changes 2..3 the reader needs

            got = reader.search(pages[2].vectors, k=40)
            assert reader._sync.resyncs == 1  # it took the full reload, not a replay
            assert not {h.page_id for h in got} & set(ids[:5])
            assert len(got) == 35
            fresh = writer.search(pages[2].vectors, k=40, exhaustive=True)
            assert [(h.page_id, round(h.score, 4)) for h in got] == [
                (h.page_id, round(h.score, 4)) for h in fresh
            ]
            newest = reader.search(pages[35].vectors, k=1)[0]
            assert newest.external_id == "doc-35"
            assert reader.stats().pages == 35
        finally:
            reader.close()


def test_a_snapshot_older_than_the_kept_log_is_rebuilt_not_replayed(
    db_path: Path, rng: np.random.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    pages, _ = clustered_pages(rng, 30, dim=DIM)
    with Store.open(db_path, ENCODER) as store:
        ids = store.add_pages(pages[:10])
    snapshot = db_path.parent / f"{db_path.name}.index" / SNAPSHOT_NAME
    old = snapshot.with_suffix(".old")
    shutil.copy(snapshot, old)
    config = StoreConfig(
        maintenance=MaintenanceConfig(
            change_log_keep=0, snapshot_every_tokens=1, snapshot_every_fraction=0
        )
    )
    with Store.open(db_path, ENCODER, config=config) as store:
        store.delete(ids[:4])
        store.add_pages(pages[10:])
    assert log_state(str(db_path))[1] >= 3
    shutil.copy(old, snapshot)  # e.g. restored from a backup taken before the prune
    with caplog.at_level(logging.INFO, logger="latestore"), Store.open(db_path, ENCODER) as store:
        assert "predates the kept change log" in caplog.text
        assert store.opened_from == "rebuilt"
        assert store.count() == 26
        assert not set(top_ids(store, pages[1].vectors, k=30)) & set(ids[:4])
        assert store.search(pages[25].vectors, k=1)[0].external_id == "doc-25"


def test_add_pages_leaves_the_log_alone_below_the_pruning_step(
    db_path: Path, rng: np.random.Generator
) -> None:
    pages, _ = clustered_pages(rng, 8, dim=DIM)
    config = StoreConfig(
        maintenance=MaintenanceConfig(
            change_log_keep=100, snapshot_every_tokens=1, snapshot_every_fraction=0
        )
    )
    with Store.open(db_path, ENCODER, config=config) as store:
        for page in pages:
            store.add_pages([Page(vectors=page.vectors, external_id=page.external_id)])
    assert log_state(str(db_path)) == (8, 0)


@pytest.mark.parametrize("fraction", [0.0, 0.1])
def test_snapshot_writes_grow_linearly_with_the_store(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, fraction: float
) -> None:
    written: list[int] = []
    real_save = IndexSync.save

    def counting_save(self: IndexSync) -> int:
        n = real_save(self)
        if n:
            written.append(n)
        return n

    monkeypatch.setattr(IndexSync, "save", counting_save)
    config = StoreConfig(
        maintenance=MaintenanceConfig(snapshot_every_tokens=100, snapshot_every_fraction=fraction)
    )
    batch = [rng.standard_normal((10, DIM)).astype(np.float32) for _ in range(5)]
    with Store.open(tmp_path / "s.db", ENCODER, config=config) as store:
        for _ in range(200):  # 200 writes of 50 tokens: 10,000 tokens in all
            store.add_pages([Page(vectors=v) for v in batch])
    final = written[-1]
    if fraction == 0:
        assert len(written) >= 95  # a fixed interval: one rewrite per 100 tokens
        assert sum(written) > 40 * final  # quadratic in the store's size
    else:
        assert len(written) <= 40  # about 10 + log(10) / log(1.1)
        assert sum(written) <= (1 + 1 / fraction + 1) * final
