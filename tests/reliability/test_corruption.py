"""Damaged derived files are detected at open and rebuilt from SQL with a warning."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from latestore import MaintenanceConfig, Store
from latestore.index.snapshot import read_snapshot, write_snapshot
from latestore.store.sync import SNAPSHOT_NAME
from tests.helpers import EXACT, precomputed_store
from tests.store.helpers import clustered_pages, query_from

DIM = 16
CONFIG = EXACT


def open_store(path: Path) -> Store:
    return precomputed_store(path, DIM, config=CONFIG)


def truncate_half(path: Path, _: Path) -> None:
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])


def truncate_to_header(path: Path, _: Path) -> None:
    path.write_bytes(path.read_bytes()[:30])


def empty(path: Path, _: Path) -> None:
    path.write_bytes(b"")


def flip_payload_bit(path: Path, _: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[-100] ^= 0x10
    path.write_bytes(bytes(blob))


def flip_header_bit(path: Path, _: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[40] ^= 0x01
    path.write_bytes(bytes(blob))


def garbage(path: Path, _: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def pickle_file(path: Path, _: Path) -> None:
    import pickle

    path.write_bytes(pickle.dumps({"not": "a snapshot"}))


def other_store(path: Path, tmp: Path) -> None:
    with precomputed_store(tmp / "other.db", DIM, config=CONFIG) as other:
        other.add_pages(clustered_pages(np.random.default_rng(5), 20, dim=DIM)[0])
    shutil.copy(tmp / "other.db.index" / SNAPSHOT_NAME, path)


def valid_checksum_wrong_pages(path: Path, _: Path) -> None:
    # A well-formed, correctly checksummed file whose page table disagrees with SQL.
    snap = read_snapshot(path, {})
    pairs = np.frombuffer(snap.sections["pages"], dtype=np.int64).reshape(-1, 2).copy()
    pairs[0, 1] += 1
    header = {k: v for k, v in snap.header.items() if k not in ("sections", "payload_sha256")}
    write_snapshot(path, header, dict(snap.sections, pages=pairs.tobytes()))


DAMAGE: dict[str, Callable[[Path, Path], None]] = {
    "truncated-half": truncate_half,
    "truncated-header": truncate_to_header,
    "empty": empty,
    "bit-flip-payload": flip_payload_bit,
    "bit-flip-header": flip_header_bit,
    "random-bytes": garbage,
    "pickle": pickle_file,
    "other-store": other_store,
    "checksummed-but-wrong": valid_checksum_wrong_pages,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_snapshot_is_rebuilt_with_a_warning(
    damage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(3)
    pages, centres = clustered_pages(rng, 120, dim=DIM)
    queries = [query_from(rng, centres) for _ in range(5)]
    db = tmp_path / "s.db"
    with open_store(db) as store:
        store.add_pages(pages)
        expected = [[(h.page_id, h.score) for h in r] for r in store.search_many(queries, k=10)]
    snapshot = tmp_path / "s.db.index" / SNAPSHOT_NAME
    assert snapshot.exists()
    DAMAGE[damage](snapshot, tmp_path)
    with caplog.at_level(logging.WARNING, logger="latestore"), open_store(db) as store:
        assert store.opened_from == "rebuilt"
        got = [[(h.page_id, h.score) for h in r] for r in store.search_many(queries, k=10)]
        assert store.count() == 120
    assert got == expected
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("rebuilding" in r.getMessage() for r in warnings), caplog.text
    with open_store(db) as store:  # the rebuilt snapshot written at close is good again
        assert store.opened_from == "snapshot"


def test_snapshot_newer_than_the_database_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database restored from a backup older than the index files beside it."""
    rng = np.random.default_rng(4)
    pages, centres = clustered_pages(rng, 60, dim=DIM)
    db = tmp_path / "s.db"
    with open_store(db) as store:
        store.add_pages(pages[:30])
    shutil.copy(db, tmp_path / "backup.db")
    with open_store(db) as store:
        store.add_pages(pages[30:])
    shutil.copy(tmp_path / "backup.db", db)
    with caplog.at_level(logging.WARNING, logger="latestore"), open_store(db) as store:
        assert store.opened_from == "rebuilt"
        assert store.count() == 30
        assert sorted(store._sync.index.tokens.page_tokens) == list(range(1, 31))
        hits = store.search(query_from(rng, centres), k=60)
        assert {h.page_id for h in hits} <= set(range(1, 31))
    assert "database at" in caplog.text


def test_unwritable_index_folder_does_not_fail_committed_writes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(6)
    pages, _ = clustered_pages(rng, 40, dim=DIM)
    db = tmp_path / "s.db"
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the index folder should be")
    config = CONFIG.model_copy(
        update={
            "maintenance": MaintenanceConfig(snapshot_every_tokens=10, snapshot_every_fraction=0)
        }
    )
    with caplog.at_level(logging.WARNING, logger="latestore"):
        store = precomputed_store(db, DIM, config=config, index_dir=blocker)
        with store:
            assert len(store.add_pages(pages)) == 40
    assert "cannot write index snapshot" in caplog.text
    with precomputed_store(db, DIM, index_dir=blocker) as store:
        assert store.count() == 40 and store.opened_from == "rebuilt"
