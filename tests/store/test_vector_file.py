"""The persisted rank-vector file: opened in place, replayed, rebuilt when it cannot be trusted.

Every test compares the store's answers with a store whose vectors come from SQL alone
(``vector_cache="memory"``), so a file that passed its checks with wrong contents
would show as a different ranking or score.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from latestore import (
    IndexConfig,
    MaintenanceConfig,
    MemoryConfig,
    SearchConfig,
    Store,
    StoreConfig,
)
from latestore.index.vector_file import MANIFEST, segment_name
from tests.helpers import precomputed_store
from tests.store.helpers import clustered_pages, query_from

DIM = 16
BASE = {"index": IndexConfig(ivf_min_tokens=2_000), "search": SearchConfig(exhaustive_max_tokens=0)}
DISK = StoreConfig(memory=MemoryConfig(vector_cache="disk"), **BASE)  # type: ignore[arg-type]
MEMORY = StoreConfig(memory=MemoryConfig(vector_cache="memory"), **BASE)  # type: ignore[arg-type]


def folder_of(db: Path) -> Path:
    return db.with_name(db.name + ".index") / "vectors"


def answers(store: Store, queries: list[np.ndarray]) -> list[list[tuple[int, float]]]:
    out = []
    for q in queries:
        for exhaustive in (False, True):
            hits = store.search(q, k=10, exhaustive=exhaustive)
            out.append([(h.page_id, round(h.score, 4)) for h in hits])
    return out


def reference(db: Path, queries: list[np.ndarray]) -> list[list[tuple[int, float]]]:
    with precomputed_store(db, DIM, config=MEMORY) as store:
        return answers(store, queries)


def opened(store: Store) -> str:
    return store._sync.vectors_from


@pytest.fixture
def built(db_path: Path, rng: np.random.Generator) -> tuple[Path, list[np.ndarray], list]:
    pages, centres = clustered_pages(rng, 300, dim=DIM)
    with precomputed_store(db_path, DIM, config=DISK) as store:
        ids = store.add_pages(pages[:200])
        store.delete(ids[:30])
        store.add_pages(pages[200:250])
        assert opened(store) == "sql"
    queries = [query_from(rng, centres) for _ in range(4)]
    return db_path, queries, pages[250:]


def test_reopen_maps_the_file_and_answers_like_sql(built: tuple) -> None:
    db, queries, _ = built
    with precomputed_store(db, DIM, config=DISK) as store:
        assert opened(store) == "file"
        assert store.stats().vector_cache == "disk"
        got = answers(store, queries)
        store._sync.index.vectors.wait_verified()
        assert not store._sync.index.vectors.damaged
    assert got == reference(db, queries)


def test_the_snapshot_index_is_viewed_at_open_and_copied_at_the_first_write(
    built: tuple,
) -> None:
    """Open maps the FAISS snapshot's lists in place; adding and deleting pages then makes
    FAISS's own copy (a resize of a viewed array would abort the process) and the
    answers stay those of a store read from SQL."""
    db, queries, more = built
    before = reference(db, queries)
    with precomputed_store(db, DIM, config=DISK) as store:
        tokens = store._sync.index.tokens
        assert tokens.kind == "ivf" and tokens.borrowed
        searched = answers(store, queries)
        assert tokens.borrowed  # searches read the view
        ids = store.add_pages(more[:10])
        store.delete(ids[:3])
        assert not store._sync.index.tokens.borrowed
        written = answers(store, queries)
    assert searched == before
    assert written == reference(db, queries)


def test_changes_since_the_file_are_replayed(built: tuple) -> None:
    db, queries, more = built
    with precomputed_store(db, DIM, config=MEMORY) as other:  # writes; the file stays behind
        ids = other.add_pages(more)
        other.delete(ids[:5])
        other.upsert_pages([more[10].model_copy(update={"metadata": {"lang": "xx"}})])
    with precomputed_store(db, DIM, config=DISK) as store:
        assert opened(store) == "file+replay"
        got = answers(store, queries)
    assert got == reference(db, queries)
    with precomputed_store(db, DIM, config=DISK) as store:  # republished at close
        assert opened(store) == "file"


def test_a_missing_file_is_rebuilt_from_sql(built: tuple) -> None:
    db, queries, _ = built
    shutil.rmtree(folder_of(db))
    with precomputed_store(db, DIM, config=DISK) as store:
        assert opened(store) == "sql"
        assert answers(store, queries) == reference(db, queries)
    with precomputed_store(db, DIM, config=DISK) as store:
        assert opened(store) == "file"


def test_a_file_past_the_kept_change_log_is_rebuilt(built: tuple) -> None:
    db, queries, more = built
    keep_one = MaintenanceConfig(
        change_log_keep=1, snapshot_every_tokens=1, snapshot_every_fraction=0
    )
    pruning = MEMORY.model_copy(update={"maintenance": keep_one})
    with precomputed_store(db, DIM, config=pruning) as other:
        for page in more[:12]:
            other.add_pages([page])
    with precomputed_store(db, DIM, config=DISK) as store:
        assert opened(store) == "sql"
        assert answers(store, queries) == reference(db, queries)


def test_a_file_newer_than_the_database_is_rebuilt(built: tuple) -> None:
    db, queries, more = built
    backup = db.with_name("backup.db")
    shutil.copy(db, backup)
    with precomputed_store(db, DIM, config=DISK) as store:
        store.add_pages(more[:10])  # the file moves past the backup's change number
    shutil.copy(backup, db)  # the database is restored from the backup
    with precomputed_store(db, DIM, config=DISK) as store:
        assert opened(store) == "sql"
        assert store.count() == 220
        assert answers(store, queries) == reference(db, queries)


def flip_manifest_table(folder: Path) -> None:
    path = folder / MANIFEST
    blob = bytearray(path.read_bytes())
    blob[-20] ^= 0x04  # in the page table: a page's row or length
    path.write_bytes(bytes(blob))


def flip_manifest_header(folder: Path) -> None:
    path = folder / MANIFEST
    blob = bytearray(path.read_bytes())
    at = blob.index(b'"change_no": ') + len(b'"change_no": ')
    blob[at] = ord("0") if blob[at] != ord("0") else ord("1")  # a plausible number
    path.write_bytes(bytes(blob))


def truncate_manifest(folder: Path) -> None:
    path = folder / MANIFEST
    path.write_bytes(path.read_bytes()[:-9])


def truncate_segment(folder: Path) -> None:
    path = sorted(folder.glob("segment-*.bin"))[0]
    with path.open("r+b") as handle:
        handle.truncate(100)


def garbage_manifest(folder: Path) -> None:
    (folder / MANIFEST).write_bytes(np.random.default_rng(0).bytes(500))


@pytest.mark.parametrize(
    "damage",
    [
        flip_manifest_table,
        flip_manifest_header,
        truncate_manifest,
        truncate_segment,
        garbage_manifest,
    ],
)
def test_a_damaged_manifest_or_segment_is_rebuilt(
    built: tuple, damage: object, caplog: pytest.LogCaptureFixture
) -> None:
    db, queries, _ = built
    damage(folder_of(db))  # type: ignore[operator]
    with caplog.at_level(logging.WARNING), precomputed_store(db, DIM, config=DISK) as store:
        assert opened(store) == "sql"
        got = answers(store, queries)
    assert "vector file rejected" in caplog.text
    assert got == reference(db, queries)
    with precomputed_store(db, DIM, config=DISK) as store:
        assert opened(store) == "file"


def test_damaged_rows_fail_their_checksum_and_are_reloaded(
    built: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    db, queries, _ = built
    segment = sorted(folder_of(db).glob("segment-*.bin"))[0]
    with segment.open("r+b") as handle:  # a flipped bit in page rows: sizes all still agree
        handle.seek(64)
        byte = handle.read(1)
        handle.seek(64)
        handle.write(bytes([byte[0] ^ 0x40]))
    with caplog.at_level(logging.WARNING), precomputed_store(db, DIM, config=DISK) as store:
        assert opened(store) == "file"  # structure checks pass: the rows are checked later
        vectors = store._sync.index.vectors
        vectors.wait_verified()
        # The pages of that segment are listed, unless a catch-up already took them
        # (under load the store's own catch-up can run first; it logs the reload).
        assert vectors.damaged or "reloading" in caplog.text
        got = answers(store, queries)  # the search reloads them from SQL first
        assert not vectors.damaged
    assert "failed its checksum" in caplog.text
    assert got == reference(db, queries)
    assert not segment.exists()  # republished without it at close
    with precomputed_store(db, DIM, config=DISK) as store:
        assert opened(store) == "file"
        store._sync.index.vectors.wait_verified()
        assert not store._sync.index.vectors.damaged


def test_a_writer_killed_before_publishing_leaves_the_last_file(built: tuple) -> None:
    db, queries, more = built
    script = textwrap.dedent(
        f"""
        import os, pickle, sys
        from latestore import StoreConfig
        from tests.helpers import precomputed_store
        pages = pickle.loads(sys.stdin.buffer.read())
        store = precomputed_store({str(db)!r}, {DIM}, config=StoreConfig(**{DISK.model_dump()!r}))
        store.add_pages(pages)  # committed in SQL, rows appended to the folder, unpublished
        store.delete([1, 2, 3])
        os._exit(0)  # killed: no close, no publish
        """
    )
    import pickle

    subprocess.run(
        [sys.executable, "-c", script],
        input=pickle.dumps(more[:20]),
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    with precomputed_store(db, DIM, config=DISK) as store:
        assert opened(store) == "file+replay"
        got = answers(store, queries)
    assert got == reference(db, queries)


def test_a_second_store_on_the_folder_reads_it_and_keeps_its_writes_in_memory(
    built: tuple,
) -> None:
    db, queries, more = built
    with (
        precomputed_store(db, DIM, config=DISK) as writer,
        precomputed_store(db, DIM, config=DISK) as reader,
    ):
        assert opened(writer) == opened(reader) == "file"
        assert writer._sync.index.vectors.folder.writer  # type: ignore[union-attr]
        assert not reader._sync.index.vectors.folder.writer  # type: ignore[union-attr]
        reader.add_pages(more[:10])
        writer.delete([100, 101])
        assert answers(reader, queries) == answers(writer, queries)
    with precomputed_store(db, DIM, config=DISK) as store:
        assert opened(store) == "file"
        assert store.count() == 228
        got = answers(store, queries)
    assert got == reference(db, queries)


def test_deleted_pages_are_compacted_away(db_path: Path, rng: np.random.Generator) -> None:
    pages, centres = clustered_pages(rng, 400, dim=DIM, min_tokens=200, max_tokens=300)
    with precomputed_store(db_path, DIM, config=DISK) as store:
        ids = store.add_pages(pages)
    folder = folder_of(db_path)
    before = sum(p.stat().st_size for p in folder.glob("segment-*.bin"))
    with precomputed_store(db_path, DIM, config=DISK) as store:
        store.delete(ids[: int(0.8 * len(ids))])
    after = sum(p.stat().st_size for p in folder.glob("segment-*.bin"))
    assert after < 0.6 * before
    queries = [query_from(rng, centres) for _ in range(3)]
    with precomputed_store(db_path, DIM, config=DISK) as store:
        assert opened(store) == "file"
        got = answers(store, queries)
    assert got == reference(db_path, queries)
    assert segment_name(0) not in {p.name for p in folder.iterdir()}
