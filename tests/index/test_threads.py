"""Thread counts are decided per search call and put back afterwards."""

from __future__ import annotations

import threading

import faiss
import pytest
import torch

from latestore.index import threads
from latestore.index.threads import search_threads, threads_for


def test_the_candidate_path_runs_on_one_thread() -> None:
    for in_flight in (1, 2, 16):
        assert threads_for(False, in_flight) == 1


def test_an_exhaustive_scan_shares_the_cores_among_searches_in_flight() -> None:
    cores = threads.cores()
    assert 1 <= threads_for(True, 1) <= cores
    assert threads_for(True, 2 * cores) == 1


def test_counts_are_set_for_the_call_and_restored() -> None:
    before = (torch.get_num_threads(), faiss.omp_get_max_threads())
    seen: list[tuple[int, int, int]] = []

    def search() -> None:
        with search_threads() as n:
            seen.append((n, torch.get_num_threads(), faiss.omp_get_max_threads()))

    workers = [threading.Thread(target=search) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    search()
    assert seen == [(1, 1, 1)] * 5
    assert (torch.get_num_threads(), faiss.omp_get_max_threads()) == before
    assert threads._in_flight == 0


def blas_counts() -> list[int]:
    """Threads of numpy's own BLAS (a pthreads OpenBLAS in numpy.libs, in its wheels)."""
    from threadpoolctl import threadpool_info

    return [
        pool["num_threads"]
        for pool in threadpool_info()
        if pool["user_api"] == "blas" and "numpy" in pool["filepath"]
    ]


def test_numpy_blas_is_held_to_one_thread_and_put_back() -> None:
    import numpy as np

    np.ones((2, 2)) @ np.ones((2, 2))  # numpy's BLAS is loaded
    before = blas_counts()
    if not before:
        pytest.skip("numpy's BLAS is not a library of its own wheel here")
    inside: list[list[int]] = []
    with threads.blas_threads(1):
        inside.append(blas_counts())
        with threads.blas_threads(1):  # nested (a query, then its rerank): still held
            inside.append(blas_counts())
        inside.append(blas_counts())  # the outer caller still holds it
    assert inside == [[1] * len(before)] * 3
    assert blas_counts() == before
    assert threads._blas_users == 0


def test_at_most_one_search_per_core_runs_at_once() -> None:
    """Concurrent searches queue for a slot per core; a search's nested scoring call
    (hybrid scoring inside a search) takes no second slot, so it cannot deadlock."""
    running = 0
    most = 0
    count_lock = threading.Lock()
    entered = threading.Barrier(8, timeout=60)

    def search() -> None:
        nonlocal running, most
        entered.wait()
        with search_threads():
            with count_lock:
                running += 1
                most = max(most, running)
            with search_threads():  # nested in the same thread: no second slot
                threading.Event().wait(0.02)
            with count_lock:
                running -= 1

    workers = [threading.Thread(target=search) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert not any(w.is_alive() for w in workers)
    assert most == min(8, threads.cores())
    assert threads._in_flight == 0


def test_bulk_work_takes_the_idle_cores_and_puts_faiss_back() -> None:
    before = faiss.omp_get_max_threads()
    with threads.bulk_threads() as n:
        assert 1 <= n <= threads.cores()
        assert faiss.omp_get_max_threads() == n
    assert faiss.omp_get_max_threads() == before
