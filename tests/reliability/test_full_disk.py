"""A full disk during ingest, re-encode and snapshot (issue 26): the write that does not
fit is refused with StoreFullError (IndexSnapshotError for a snapshot), nothing
acknowledged is lost, the store opens and searches, and once space is freed it goes on.

The disk is a small tmpfs mounted for the test, which needs root: elsewhere the tests
skip, saying why.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latestore import Page, Store, StoreFullError
from latestore.encoders.windows import WindowSettings
from latestore.errors import IndexSnapshotError
from tests.helpers import precomputed_store
from tests.reliability.corpus import CONFIG as CORPUS_CONFIG
from tests.reliability.corpus import DIM, batch

# The rank vectors stay in memory here: the 4 MiB disk is for SQL's behaviour when full,
# and the persisted vector folder's first segments alone would fill it (a vector folder
# that cannot be written is derived data: the sync logs it and goes on).
CONFIG = CORPUS_CONFIG.model_copy(update={"vector_cache": "memory"})

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


@pytest.mark.xfail(
    strict=True,
    raises=OSError,
    reason="known defect (2026-12-06 merge): reopening a store whose rank vectors live in "
    "the persisted vector folder fails with ENOSPC on a full disk, where the folder, "
    "being derived, should fall back to memory",
)
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
    with Store.open(db, minilm) as store:
        assert {p.external_id: p.content_hash for p in store.pages()} == hashes
        assert store.encoder.fingerprint == truncating.fingerprint  # not switched half-way
        assert store._sync.index.consistent()
        ballast.unlink()
        report = store.reencode(WindowSettings(), batch_size=4)
        assert report.pages_reencoded > 0
        assert store.encoding()["windowing"]["windows"] is True
        assert {p.external_id: p.content_hash for p in store.pages()} == hashes


def test_postgresql_index_files_on_a_full_disk(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's own disk is the server's; its derived files live in ~/.cache."""
    from tests.conftest import PG_URL_ENV
    from tests.postgres import fresh_database

    admin = os.environ.get(PG_URL_ENV)
    if not admin:
        pytest.skip(f"PostgreSQL variant: set {PG_URL_ENV}")
    monkeypatch.setenv("HOME", str(small_disk))
    with fresh_database(admin) as url:
        with precomputed_store(url, DIM, config=CONFIG) as store:
            store.add_pages(batch(0))
            ballast = fill(small_disk)
            for number in range(1, 8):  # snapshots fail (logged): the writes do not
                store.add_pages(batch(number))
            with pytest.raises(IndexSnapshotError, match="No space left"):
                store.reindex()
        with precomputed_store(url, DIM, config=CONFIG) as store:
            assert store.count() == 48 and store._sync.index.consistent()
            ballast.unlink()
            store.reindex()
