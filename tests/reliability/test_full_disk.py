"""A full disk during ingest, re-encode and snapshot (issue 26): the write that does not
fit is refused with StoreFullError (IndexSnapshotError for a snapshot), nothing
acknowledged is lost, the store opens and searches, and once space is freed it goes on.

The disk is a small tmpfs mounted for the test, which needs root: elsewhere the tests
skip, saying why.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latestore import MemoryConfig, Page, Store, StoreFullError
from latestore.encoders.windows import WindowSettings
from latestore.errors import IndexSnapshotError
from tests.helpers import precomputed_store
from tests.reliability.corpus import CONFIG as CORPUS_CONFIG
from tests.reliability.corpus import DIM, batch, queries

# The rank vectors stay in memory here: the 4 MiB disk is for SQL's behaviour when full,
# and the persisted vector folder's first segments alone would fill it (a vector folder
# that cannot be written is derived data: the sync logs it and goes on).
CONFIG = CORPUS_CONFIG.model_copy(update={"memory": MemoryConfig(vector_cache="memory")})

DISK_BYTES = 4 << 20
# Filling a disk, and re-encoding with MiniLM, take 20 s or more each on a busy machine.
pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs at ``tmp_path/disk``."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the disk with a ballast file, then give back ``leave`` bytes of it."""
    ballast = folder / "ballast"
    block = b"\0" * 65536
    # Unbuffered: a buffered file keeps the block that did not fit and fails again
    # when it is closed.
    with ballast.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    os.truncate(ballast, max(0, ballast.stat().st_size - leave))
    return ballast


def big_batch(number: int) -> list[Page]:
    """A batch with text, so that a few dozen fill 4 MiB."""
    return [
        p.model_copy(update={"text": f"batch {number} " + "words " * 400}) for p in batch(number)
    ]


def test_ingest_until_the_disk_is_full(small_disk: Path) -> None:
    db = small_disk / "store.db"
    acked: list[int] = []
    with precomputed_store(db, DIM, config=CONFIG) as store:
        ballast = fill(small_disk, leave=2 << 20)
        with pytest.raises(StoreFullError, match="full"):
            for number in range(10_000):
                store.add_pages(big_batch(number))
                acked.append(number)
        assert len(acked) > 3
        # The refused batch left nothing behind; reads still work on a full disk.
        assert store.count() == 6 * len(acked)
        assert len(store.search(np.ones((2, DIM), np.float32), k=5)) == 5
    with precomputed_store(db, DIM, config=CONFIG) as store:  # opens on the full disk
        ids = {p.external_id for p in store.pages()}
        assert ids == {p.external_id for n in acked for p in batch(n)}
        with pytest.raises(StoreFullError):  # even a delete needs room in the WAL
            store.delete([p.page_id for p in store.pages(limit=12)])
    ballast.unlink()
    with precomputed_store(db, DIM, config=CONFIG) as store:
        store.add_pages(batch(10_000))  # with room again, writes work again
        assert store.count() == 6 * len(acked) + 6
        assert store._sync.index.consistent()


def test_snapshot_on_a_full_disk_is_an_index_snapshot_error(small_disk: Path) -> None:
    db = small_disk / "store.db"
    with precomputed_store(db, DIM, config=CONFIG) as store:
        for number in range(8):
            store.add_pages(batch(number))
        ballast = fill(small_disk)
        with pytest.raises(IndexSnapshotError, match="No space left"):
            store.reindex()
        assert len(store.search(np.ones((2, DIM), np.float32), k=5)) == 5
    assert not list((small_disk / "store.db.index").glob(".*.tmp"))  # no half file left
    ballast.unlink()
    with precomputed_store(db, DIM, config=CONFIG) as store:  # a good or rebuilt index
        assert store.count() == 48 and store._sync.index.consistent()
        store.reindex()


def test_reencode_on_a_full_disk_stops_and_resumes(small_disk: Path, minilm: Any) -> None:
    db = small_disk / "store.db"
    truncating = minilm.with_windowing(WindowSettings(enabled=False))
    filler = "The kiln fires the clay and the glaze melts. " * 4
    pages = [Page(text=f"{i} {filler}", external_id=f"t{i}") for i in range(10)]
    with Store.open(db, truncating) as store:
        store.add_pages(pages)
        hashes = {p.external_id: p.content_hash for p in store.pages()}
        ballast = fill(small_disk, leave=200 << 10)
        with pytest.raises(StoreFullError):
            store.reencode(WindowSettings(), batch_size=2)
    with Store.open(db, minilm) as store:  # the vector folder does not fit: held in memory
        assert "No space left" in str(store.stats().vector_cache_fallback)
        assert {p.external_id: p.content_hash for p in store.pages()} == hashes
        assert store.encoder.fingerprint == truncating.fingerprint  # not switched half-way
        assert store._sync.index.consistent()
        ballast.unlink()
        report = store.reencode(WindowSettings(), batch_size=4)
        assert report.pages_reencoded > 0
        assert store.encoding()["windowing"]["windows"] is True
        assert {p.external_id: p.content_hash for p in store.pages()} == hashes


@pytest.mark.parametrize("vector_cache", ["memory", "disk"])
def test_postgresql_index_files_on_a_full_disk(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch, vector_cache: str
) -> None:
    """PostgreSQL's own disk is the server's; its derived files (the snapshot, and with
    the disk cache the vector folder) live in ~/.cache."""
    config = CORPUS_CONFIG.model_copy(update={"memory": MemoryConfig(vector_cache=vector_cache)})
    from tests.conftest import PG_URL_ENV
    from tests.postgres import fresh_database

    admin = os.environ.get(PG_URL_ENV)
    if not admin:
        pytest.skip(f"PostgreSQL variant: set {PG_URL_ENV}")
    monkeypatch.setenv("HOME", str(small_disk))
    with fresh_database(admin) as url:
        with precomputed_store(url, DIM, config=config) as store:
            store.add_pages(batch(0))
            ballast = fill(small_disk)
            for number in range(1, 8):  # snapshots fail (logged): the writes do not
                store.add_pages(batch(number))
            with pytest.raises(IndexSnapshotError, match="No space left"):
                store.reindex()
        with precomputed_store(url, DIM, config=config) as store:
            assert store.count() == 48 and store._sync.index.consistent()
            ballast.unlink()
            store.reindex()
            assert store.stats().vector_cache == vector_cache


# -- the persisted vector folder (vector_cache="disk", the default) on a disk that refuses
# writes: it is derived from SQL, so the store holds rank vectors in memory instead.


def ranking(store: Store) -> list[list[tuple[int, float]]]:
    return [[(h.page_id, round(h.score, 4)) for h in store.search(q, k=8)] for q in queries(4)]


def disk_cache_store(db: Path, index_dir: Path) -> Store:
    """SQL beside the test, the index folder (snapshot and vector folder) on the small disk."""
    return precomputed_store(db, DIM, config=CORPUS_CONFIG, index_dir=index_dir)


def memory_ranking(db: Path, tmp_path: Path) -> list[list[tuple[int, float]]]:
    """The same store ranked with the rank vectors in memory (its own index folder)."""
    with precomputed_store(db, DIM, config=CONFIG, index_dir=tmp_path / "memory") as store:
        return ranking(store)


def test_a_vector_folder_that_does_not_fit_at_open_is_held_in_memory(
    small_disk: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db, index_dir = tmp_path / "store.db", small_disk / "index"
    with disk_cache_store(db, index_dir) as store:
        for number in range(4):
            store.add_pages(batch(number))
    shutil.rmtree(index_dir / "vectors")  # lost: the next open rebuilds it from SQL
    ballast = fill(small_disk)
    with caplog.at_level(logging.WARNING, "latestore"), disk_cache_store(db, index_dir) as store:
        stats = store.stats()
        assert stats.vector_cache == "memory"
        assert "No space left" in str(stats.vector_cache_fallback)
        assert ranking(store) == memory_ranking(db, tmp_path)
        store.add_pages(batch(4))  # writes go on, their vectors held in memory too
        assert store.count() == 30 and store._sync.index.consistent()
        assert ranking(store) == memory_ranking(db, tmp_path)
    assert "new pages held in memory" in caplog.text
    ballast.unlink()
    with disk_cache_store(db, index_dir) as store:  # room again: the folder is rebuilt
        assert store.stats().vector_cache == "disk"
        assert store.stats().vector_cache_fallback is None
    with disk_cache_store(db, index_dir) as store:  # ... and published: mapped, not read
        assert store._sync.vectors_from == "file"
        assert ranking(store) == memory_ranking(db, tmp_path)


def test_an_add_that_cannot_grow_the_vector_folder_is_committed_and_searchable(
    small_disk: Path, tmp_path: Path
) -> None:
    db, index_dir = tmp_path / "store.db", small_disk / "index"
    with disk_cache_store(db, index_dir) as store:
        store.add_pages(batch(0))
    with disk_cache_store(db, index_dir) as store:
        assert store._sync.vectors_from == "file"
        ballast = fill(small_disk)
        # The published segments are sealed: these pages need a new one, which does not
        # fit. The SQL commit is the truth; the add succeeds and its pages are ranked.
        ids = list(store.add_pages(batch(1)))
        assert "No space left" in str(store.stats().vector_cache_fallback)
        assert store.count() == 12 and store._sync.index.consistent()
        found = {h.page_id for h in store.search(np.ones((2, DIM), np.float32), k=12)}
        assert set(ids) <= found
        assert ranking(store) == memory_ranking(db, tmp_path)
        store.delete(ids[:2])  # deletes and further adds go on as well
        store.add_pages(batch(2))
        assert ranking(store) == memory_ranking(db, tmp_path)
    ballast.unlink()
    with disk_cache_store(db, index_dir) as store:  # the folder's last state + replay
        assert store._sync.vectors_from == "file+replay"
        assert store.stats().vector_cache_fallback is None
        assert store.count() == 16 and store._sync.index.consistent()
        assert ranking(store) == memory_ranking(db, tmp_path)


def test_reindex_writes_the_vector_folder_again_once_there_is_room(
    small_disk: Path, tmp_path: Path
) -> None:
    db, index_dir = tmp_path / "store.db", small_disk / "index"
    with disk_cache_store(db, index_dir) as store:
        store.add_pages(batch(0))
    with disk_cache_store(db, index_dir) as store:
        ballast = fill(small_disk)
        store.add_pages(batch(1))
        with pytest.raises(IndexSnapshotError):  # no room yet: reindex says so
            store.reindex()
        assert store.stats().vector_cache_fallback is not None
        ballast.unlink()
        store.reindex()  # room again: the folder is mapped, replayed and published
        assert store.stats().vector_cache == "disk"
        assert store.stats().vector_cache_fallback is None
        assert store._sync.vectors_from == "file+replay"
        store.add_pages(batch(2))  # written to the folder again
        assert store.count() == 18 and store._sync.index.consistent()
        assert ranking(store) == memory_ranking(db, tmp_path)
    with disk_cache_store(db, index_dir) as store:
        assert store._sync.vectors_from == "file"
        assert ranking(store) == memory_ranking(db, tmp_path)


def test_scratch_vector_files_on_a_full_disk_are_held_in_memory(small_disk: Path) -> None:
    """A disk cache without an index folder packs pages in unlinked scratch files; a
    full scratch disk falls back to memory the same way."""
    from latestore.index.vectors import VectorCache

    rng = np.random.default_rng(5)
    pages = {i: rng.standard_normal((int(rng.integers(1, 60)), DIM)) for i in range(30)}
    disk = VectorCache(DIM, "float32", on_disk=True, directory=small_disk)
    memory = VectorCache(DIM, "float32")
    ballast = fill(small_disk)
    for cache in (disk, memory):
        for page_id, vectors in pages.items():
            cache.put(page_id, vectors)
    assert "No space left" in str(disk.fallback)
    for page_id in pages:
        np.testing.assert_array_equal(disk.get(page_id), memory.get(page_id))
    disk.clear()
    ballast.unlink()


def remount(mount_point: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount_point)], check=True)


def test_a_read_only_vector_folder_is_read_and_new_pages_held_in_memory(
    small_disk: Path, tmp_path: Path
) -> None:
    db, index_dir = tmp_path / "store.db", small_disk / "index"
    with disk_cache_store(db, index_dir) as store:
        for number in range(3):
            store.add_pages(batch(number))
    remount(small_disk, "ro")
    try:
        with disk_cache_store(db, index_dir) as store:
            assert store._sync.vectors_from == "file"  # the published pages, mapped
            assert "Read-only file system" in str(store.stats().vector_cache_fallback)
            store.add_pages(batch(3))
            assert store.count() == 24 and store._sync.index.consistent()
            assert ranking(store) == memory_ranking(db, tmp_path)
        with disk_cache_store(db, small_disk / "missing") as store:  # cannot even be made
            assert "Read-only file system" in str(store.stats().vector_cache_fallback)
            assert ranking(store) == memory_ranking(db, tmp_path)
    finally:
        remount(small_disk, "rw")
    with disk_cache_store(db, index_dir) as store:
        assert store._sync.vectors_from == "file+replay"
        assert store.stats().vector_cache_fallback is None
