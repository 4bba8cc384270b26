"""Writers racing on the same external ids, in separate processes, on both backends.

The upsert plan (insert, replace in place, or skip an identical page) must be made
under the write lock: a plan made before it goes stale when another writer commits
first, and used to end in a raw UNIQUE or FOREIGN KEY IntegrityError.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

import latestore.store.sql
from latestore.errors import StoreBusyError
from tests.helpers import precomputed_store
from tests.reliability import race_workers
from tests.reliability.corpus import CONFIG, DIM, batch
from tests.reliability.test_concurrency import held_write_lock

CTX = multiprocessing.get_context("spawn")  # no fork of a process holding faiss threads


def _existing_store(url: str) -> int:
    with precomputed_store(url, DIM, config=CONFIG) as store:
        store.add_pages(batch(0))
        return int(store.stats().change_no)


def _run(*processes: multiprocessing.process.BaseProcess) -> None:
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=180)
    assert [p.exitcode for p in processes] == [0] * len(processes)


def _by_external_id(url: str) -> dict[str, tuple[int, str]]:
    with precomputed_store(url, DIM) as store:
        stored = store.get_many(store.page_ids())
        assert store.count() == store.stats().pages == len(stored)
    out = {}
    for page in stored:
        assert page.external_id is not None and page.external_id not in out
        out[page.external_id] = (page.page_id, str(page.metadata.get("writer")))
    return out


@pytest.mark.slow
def test_two_writers_insert_the_same_new_pages(store_url: str, tmp_path: Path) -> None:
    """Both look before either writes: the second must replace the first's pages."""
    _existing_store(store_url)
    barrier = CTX.Barrier(2)
    outs = [str(tmp_path / f"{tag}.json") for tag in "ab"]
    writers = [
        CTX.Process(
            target=race_workers.upsert,
            args=(store_url, tag, seed, out),
            kwargs={"barrier": barrier},
        )
        for tag, seed, out in zip("ab", (1, 2), outs, strict=True)
    ]
    _run(*writers)
    ids_a, ids_b = (json.loads(Path(out).read_text()) for out in outs)
    assert ids_a == ids_b  # the later writer replaced the pages in place
    stored = _by_external_id(store_url)
    race = {e: v for e, v in stored.items() if e.startswith("race-")}
    assert len(race) == race_workers.PAGES
    assert sorted(page_id for page_id, _ in race.values()) == sorted(ids_a)
    assert len({writer for _, writer in race.values()}) == 1  # one transaction won whole


@pytest.mark.slow
def test_two_writers_of_identical_pages_write_once(store_url: str, tmp_path: Path) -> None:
    """The second finds the pages stored identically under the lock and skips them."""
    before = _existing_store(store_url)
    barrier = CTX.Barrier(2)
    outs = [str(tmp_path / f"{n}.json") for n in range(2)]
    writers = [
        CTX.Process(
            target=race_workers.upsert,
            args=(store_url, "same", 5, out),
            kwargs={"barrier": barrier},
        )
        for out in outs
    ]
    _run(*writers)
    ids = [json.loads(Path(out).read_text()) for out in outs]
    assert ids[0] == ids[1]
    assert len(_by_external_id(store_url)) == len(batch(0)) + race_workers.PAGES
    with precomputed_store(store_url, DIM) as store:
        assert store.stats().change_no == before + 1  # one write; the other wrote nothing


@pytest.mark.slow
def test_upsert_racing_a_delete_of_its_pages(store_url: str, tmp_path: Path) -> None:
    """The writer saw the pages, then they were deleted: it must insert them afresh."""
    _existing_store(store_url)
    with precomputed_store(store_url, DIM) as store:
        old_ids = store.add_pages(race_workers.pages("old", 3))
        arrived, go = CTX.Event(), CTX.Event()
        out = str(tmp_path / "writer.json")
        writer = CTX.Process(
            target=race_workers.upsert,
            args=(store_url, "new", 4, out),
            kwargs={"arrived": arrived, "go": go},
        )
        writer.start()
        try:
            assert arrived.wait(120), "the writer never prepared its pages"
            assert store.delete(external_ids=[f"race-{j}" for j in range(race_workers.PAGES)]) == (
                race_workers.PAGES
            )
        finally:
            go.set()
        writer.join(timeout=180)
        assert writer.exitcode == 0
        new_ids = json.loads(Path(out).read_text())
        assert not set(new_ids) & set(old_ids)  # deleted ids are never reused
        assert store.count() == len(batch(0)) + race_workers.PAGES
    stored = _by_external_id(store_url)
    assert sorted(v[0] for e, v in stored.items() if e.startswith("race-")) == sorted(new_ids)
    assert {v[1] for e, v in stored.items() if e.startswith("race-")} == {"new"}


def test_re_adding_identical_pages_does_not_wait_for_the_write_lock(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "://" in store_url:  # a writer that waited would fail after 500 ms instead
        store_url += "?options=-c%20lock_timeout%3D500"
    else:
        monkeypatch.setattr(latestore.store.sql, "SQLITE_BUSY_TIMEOUT_MS", 500)
    with precomputed_store(store_url, DIM, config=CONFIG) as store:
        ids = store.add_pages(batch(0))
        change = store.stats().change_no
        _, release = held_write_lock(store_url)
        try:
            assert store.upsert_pages(batch(0)) == ids  # nothing to write: no lock needed
            with pytest.raises(StoreBusyError):
                store.add_pages(batch(1))
        finally:
            release()  # type: ignore[operator]
        assert store.stats().change_no == change
