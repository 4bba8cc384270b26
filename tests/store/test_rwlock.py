"""The store's readers-writer lock, and searches that share it."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from latestore import PrecomputedVectors, Store
from latestore.store.rwlock import ReadWriteLock
from tests.store.helpers import clustered_pages, query_from

WAIT = 10.0  # seconds before a barrier that should open is called broken


def test_readers_share_and_a_writer_waits_for_them() -> None:
    lock = ReadWriteLock()
    both_inside = threading.Barrier(2, timeout=WAIT)
    events: list[str] = []

    def reader(name: str) -> None:
        with lock.read():
            both_inside.wait()  # breaks (raises) if the readers were serialised
            events.append(name)

    readers = [threading.Thread(target=reader, args=(f"r{i}",)) for i in range(2)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    assert sorted(events) == ["r0", "r1"]

    holding = threading.Event()
    release = threading.Event()

    def long_reader() -> None:
        with lock.read():
            holding.set()
            release.wait(WAIT)
            events.append("reader done")

    def writer() -> None:
        with lock.write():
            events.append("writer in")

    t_reader = threading.Thread(target=long_reader)
    t_reader.start()
    assert holding.wait(WAIT)
    t_writer = threading.Thread(target=writer)
    t_writer.start()
    t_writer.join(0.2)
    assert t_writer.is_alive()  # blocked behind the reader
    release.set()
    t_reader.join()
    t_writer.join(WAIT)
    assert events[-2:] == ["reader done", "writer in"]


def test_writer_may_reenter_and_read() -> None:
    lock = ReadWriteLock()
    with lock.write(), lock.write(), lock.read():
        pass
    with lock.read():  # fully released
        pass


def test_waiting_writer_is_not_starved_by_new_readers() -> None:
    lock = ReadWriteLock()
    first_in = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first_reader() -> None:
        with lock.read():
            first_in.set()
            release.wait(WAIT)

    def writer() -> None:
        with lock.write():
            order.append("writer")

    def late_reader() -> None:
        with lock.read():
            order.append("late reader")

    threads = [threading.Thread(target=first_reader)]
    threads[0].start()
    assert first_in.wait(WAIT)
    threads.append(threading.Thread(target=writer))
    threads[1].start()
    while not lock._writers_waiting:  # the writer is queued
        threading.Event().wait(0.01)
    threads.append(threading.Thread(target=late_reader))
    threads[2].start()
    release.set()
    for t in threads:
        t.join(WAIT)
    assert order == ["writer", "late reader"]


def test_store_searches_run_concurrently(tmp_path: Path, rng: np.random.Generator) -> None:
    """Two threads are inside ranking at once: neither waits for the other's search."""
    pages, centres = clustered_pages(rng, 120, dim=16)
    with Store.open(tmp_path / "s.db", PrecomputedVectors(dim=16)) as store:
        store.add_pages(pages)
        index = store._sync.index
        real_search = index.search
        both_ranking = threading.Barrier(2, timeout=WAIT)

        def meeting_search(*args: object, **kwargs: object) -> object:
            both_ranking.wait()  # raises BrokenBarrierError if searches were serialised
            return real_search(*args, **kwargs)  # type: ignore[arg-type]

        index.search = meeting_search  # type: ignore[method-assign]
        results: list[list[int]] = []

        def search() -> None:
            results.append([h.page_id for h in store.search(query_from(rng, centres), k=3)])

        threads = [threading.Thread(target=search) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert len(results) == 2 and all(len(r) == 3 for r in results)
        index.search = real_search  # type: ignore[method-assign]
