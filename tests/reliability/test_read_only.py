"""A store this process may only read (issue 26): searches work, writes are refused with
StoreReadOnlyError, and nothing changes.

SQLite: a store made by root, opened as ``nobody`` (the worker drops root itself, after
its imports); run as another user, the files are made read-only instead. PostgreSQL: a
session whose transactions are read-only, as on a standby."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from latestore import Page, StoreReadOnlyError
from tests.helpers import precomputed_store

CHILD = Path(__file__).with_name("read_only_child.py")
DIM = 8


def pages() -> list[Page]:
    rng = np.random.default_rng(3)
    return [Page(vectors=rng.standard_normal((3, DIM)), external_id=f"p{i}") for i in range(10)]


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder another user can enter (pytest's tmp_path is private to its user)."""
    folder = Path(tempfile.mkdtemp(prefix="latestore-ro-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def digest(folder: Path) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and "warm" not in p.parts)
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


@pytest.mark.slow
def test_a_store_read_by_a_user_who_cannot_write_it(shared_folder: Path) -> None:
    db = shared_folder / "store.db"
    with precomputed_store(db, DIM) as store:
        store.add_pages(pages())
        expected = [h.page_id for h in store.search(np.ones((2, DIM), np.float32), k=3)]
    if os.geteuid() != 0:  # not root: this user is the one who may not write
        db.chmod(0o444)
        shared_folder.chmod(0o555)
    before = digest(shared_folder)
    (shared_folder / "warm").mkdir(mode=0o700)
    run = subprocess.run(
        [sys.executable, str(CHILD), str(shared_folder / "warm" / "w.db"), str(db), str(DIM)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if os.geteuid() != 0:
        shared_folder.chmod(0o755)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["uid"] != 0
    assert out["count"] == 10 and out["hits"] == expected
    # The vector folder is not this user's to write: rank vectors it lacks are held in
    # memory, and stats say so.
    assert "Permission denied" in str(out["vector_cache_fallback"]), out
    assert out["add"]["error"] == "StoreReadOnlyError", out
    assert out["delete"]["error"] == "StoreReadOnlyError", out
    assert out["reindex"]["error"] == "IndexSnapshotError", out  # a typed error too
    assert "ok" in out["close"]
    assert digest(shared_folder) == before


def test_a_postgresql_session_that_may_only_read(store_url: str) -> None:
    if not store_url.startswith("postgresql"):
        pytest.skip("the read-only session is PostgreSQL's; SQLite is the test above")
    with precomputed_store(store_url, DIM) as store:
        store.add_pages(pages())
        expected = [h.page_id for h in store.search(np.ones((2, DIM), np.float32), k=3)]
    read_only = f"{store_url}?options=-c%20default_transaction_read_only%3Don"
    with precomputed_store(read_only, DIM) as store:
        assert [h.page_id for h in store.search(np.ones((2, DIM), np.float32), k=3)] == expected
        with pytest.raises(StoreReadOnlyError, match="read-only"):
            store.add_pages([Page(vectors=np.ones((2, DIM)))])
        with pytest.raises(StoreReadOnlyError):
            store.delete_where({"page_id": {"$gt": 0}})
        assert store.count() == 10
