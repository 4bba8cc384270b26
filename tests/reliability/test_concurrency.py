"""Readers and writers at once: threads of one process, and separate processes."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import latestore.store.sql
from latestore import Page
from latestore.errors import InvalidInputError, StoreBusyError
from latestore.store.schema import PageRow
from tests.helpers import precomputed_store
from tests.reliability import concurrent_workers
from tests.reliability.corpus import CONFIG, DIM, batch, batch_of, queries

READER_THREADS = 4
READER_PROCESSES = 3


def test_reader_threads_while_a_writer_adds_and_deletes(tmp_path: Path) -> None:
    db = tmp_path / "threads.db"
    store = precomputed_store(db, DIM, config=CONFIG)
    store.add_pages(batch(0))
    started: set[int] = {0}
    deleted: set[int] = set()
    failures: list[BaseException] = []
    searches = [0] * READER_THREADS
    stop = threading.Event()

    def read(slot: int) -> None:
        try:
            while not stop.is_set():
                gone = set(deleted)  # deleted before the search began: must not show
                results = store.search_many(queries(2, seed=slot * 1000 + searches[slot]), k=15)
                may = set(started)  # batches begun by the time the search ended
                for result in results:
                    for hit in result:
                        number = batch_of(hit.external_id or "")
                        assert number in may and number % 5 != 4, hit
                        assert hit.page_id not in gone, f"deleted page {hit.page_id} returned"
                searches[slot] += 1
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(READER_THREADS)]
    for t in threads:
        t.start()
    rng = np.random.default_rng(0)
    try:
        for number in range(1, 41):
            if number % 5 == 4:  # a batch with one bad page: none of it may show
                bad = Page(vectors=np.zeros((2, DIM), np.float32), external_id="zero")
                with pytest.raises(InvalidInputError):
                    store.add_pages([*batch(number), bad])
                continue
            started.add(number)
            store.add_pages(batch(number))
            if number % 2 == 0:
                victims = [int(v) for v in rng.choice(store.count(), 3, replace=False) + 1]
                store.delete(victims)
                deleted.update(victims)
    finally:
        stop.set()
        for t in threads:
            t.join()
    try:
        assert not failures, failures[0]
        assert min(searches) > 0
        alive = {h.page_id for h in store.search(queries(1)[0], k=1000, exhaustive=True)}
        assert not alive & deleted
        assert store.count() == len(alive)
    finally:
        store.close()


@pytest.mark.slow
def test_reader_processes_while_another_process_ingests(tmp_path: Path) -> None:
    db = str(tmp_path / "procs.db")
    log = str(tmp_path / "journal.txt")
    with precomputed_store(db, DIM, config=CONFIG) as store:
        store.add_pages(batch(0))
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding faiss threads
    outs = [str(tmp_path / f"reader{i}.json") for i in range(READER_PROCESSES)]
    readers = [
        ctx.Process(target=concurrent_workers.reader, args=(db, log, out, i * 10_000))
        for i, out in enumerate(outs)
    ]
    writer = ctx.Process(target=concurrent_workers.writer, args=(db, log, 1, 60, READER_PROCESSES))
    for p in [*readers, writer]:
        p.start()
    for p in [writer, *readers]:
        p.join(timeout=240)
    assert writer.exitcode == 0
    assert [p.exitcode for p in readers] == [0] * READER_PROCESSES
    results = [json.loads(Path(out).read_text()) for out in outs]
    assert all(r["searches"] > 1 for r in results), results
    lines = Path(log).read_text().splitlines()
    with precomputed_store(db, DIM) as store:
        with Session(store._engine) as session:
            rows = dict(session.execute(select(PageRow.id, PageRow.external_id)).all())
        index = store._sync.index
        assert index.tokens.page_tokens.keys() == rows.keys()
    deleted = {i for x in lines if x.startswith("deleted ") for i in json.loads(x[8:])}
    added = {int(x.split()[2]) for x in lines if x.startswith("ok add ")}
    poisoned = {int(x.split()[1]) for x in lines if x.startswith("poison ")}
    present = {batch_of(e or "") for e in rows.values()}
    assert not deleted & rows.keys()
    assert present <= added | {0} and not present & poisoned
    assert len(rows) == (len(added) + 1) * len(batch(0)) - len(deleted)
    print(f"reader processes: {results}; batches {len(added)}, deleted {len(deleted)}")


def held_write_lock(store_url: str) -> tuple[object, object]:
    """Take the store's write lock from outside latestore, as another writer would."""
    if "://" not in store_url:
        raw = sqlite3.connect(store_url, isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        return raw, raw.rollback
    from sqlalchemy import create_engine, text

    engine = create_engine(store_url)
    conn = engine.connect()
    conn.execute(text("UPDATE ls_store SET last_change = last_change WHERE id = 1"))

    def release() -> None:
        conn.commit()
        conn.close()
        engine.dispose()

    return conn, release


def test_second_writer_waits_for_the_first(store_url: str) -> None:
    with precomputed_store(store_url, DIM, config=CONFIG) as store:
        store.add_pages(batch(0))
        _, release = held_write_lock(store_url)
        done = threading.Event()
        errors: list[BaseException] = []

        def write() -> None:
            try:
                store.add_pages(batch(1))
            except BaseException as exc:
                errors.append(exc)
            done.set()

        thread = threading.Thread(target=write)
        thread.start()
        try:
            assert not done.wait(1.0), "the second writer did not wait for the lock"
            assert store.count() == len(batch(0))  # readers are not blocked meanwhile
            assert len(store.search(queries(1)[0], k=3)) == 3
        finally:
            release()  # type: ignore[operator]
        thread.join(timeout=30)
        assert done.is_set() and not errors, errors
        assert store.count() == 2 * len(batch(0))
        assert store.stats().change_no == 2


def test_second_writer_gets_a_clear_error_after_the_lock_timeout(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "://" in store_url:  # PostgreSQL waits as long as the server's lock_timeout says
        store_url += "?options=-c%20lock_timeout%3D500"
    else:
        monkeypatch.setattr(latestore.store.sql, "SQLITE_BUSY_TIMEOUT_MS", 500)
    with precomputed_store(store_url, DIM, config=CONFIG) as store:
        store.add_pages(batch(0))
        _, release = held_write_lock(store_url)
        try:
            began = time.monotonic()
            with pytest.raises(StoreBusyError, match="write lock"):
                store.add_pages(batch(1))
            assert time.monotonic() - began >= 0.4
            with pytest.raises(StoreBusyError):
                store.delete([1])
        finally:
            release()  # type: ignore[operator]
        assert store.count() == len(batch(0))  # nothing of the refused writes
        store.add_pages(batch(1))  # and the store works once the lock is free
        assert store.count() == 2 * len(batch(0))
        assert store.stats().change_no == 2
