"""How many threads one search may use: decided per call, not left to OpenMP.

OpenMP's default gives every op of every search one thread per core. A search is many
small ops (a FAISS probe, then a few 4 MiB blocks per candidate group), and each op
hands its work to the other threads and waits at a barrier; when another process (or
another search of this one) holds a core, the barrier waits for a descheduled thread
and a 84 ms search takes 800 ms. So:

* the candidate path (FAISS probe, approximate ranking, exact rerank) always runs on
  one thread: its ops are too small to split, and parallelism comes from concurrent
  searches, which ``serve`` and Ray shards run anyway;
* an exhaustive scan (``exhaustive=True``: a large job of big GEMMs) takes the cores
  that are idle right now, shared among the searches this process has in flight,
  never more: ``min(idle cores, cores // searches in flight)``, at least one. "Idle"
  is read from the kernel's count of runnable tasks (``/proc/loadavg``), an instant
  figure, not the 1-minute average.

torch and FAISS keep their thread counts per OS thread (OpenMP's per-thread setting),
so a call sets them for its own thread and restores them on the way out; a thread that
starts using torch meanwhile inherits the last value set, which is why it is restored.

A process's first candidate search scores its few blocks with numpy
(index/maxsim_numpy.py) rather than wait seconds for torch's import; its next search
loads torch unless the process is a one-off command (latestore.torch_use); an
exhaustive scan loads torch's kernels at once.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from latestore.torch_use import loaded_torch, rerank_choice, torch_wanted, warm_torch

_lock = threading.Lock()
_in_flight = 0
_slots: threading.BoundedSemaphore | None = None  # searches running at once: one per core
_inside = threading.local()  # nested calls (a search's own scoring) take no second slot


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def runnable_elsewhere(in_flight: int) -> int:
    """Tasks runnable right now besides this process's searches (Linux; else 0)."""
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, running - in_flight)


def threads_for(exhaustive: bool, in_flight: int) -> int:
    """Intra-op threads for one search call (see the module docstring)."""
    if not exhaustive:
        return 1
    total = cores()
    idle = total - runnable_elsewhere(in_flight)
    return max(1, min(idle, total // max(1, in_flight)))


def search_slots() -> threading.BoundedSemaphore:
    global _slots
    with _lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(cores())
        return _slots


@contextmanager
def search_threads(exhaustive: bool = False) -> Iterator[int]:
    """Run the body with this call's thread count in torch and FAISS; yields it.

    At most one search per core runs its index work at a time; the others wait for a
    slot. Sixteen searches on two cores all at once only take turns at the GIL and
    evict each other's blocks from the caches (16 concurrent searches gave fewer
    queries per second than one at a time); queued, they finish in the same total CPU
    and each of them sooner on average.
    """
    if getattr(_inside, "depth", 0):
        with _thread_counts(exhaustive) as wanted:
            yield wanted
        return
    slots = search_slots()
    slots.acquire()
    _inside.depth = 1
    try:
        with _thread_counts(exhaustive) as wanted:
            yield wanted
    finally:
        _inside.depth = 0
        slots.release()


@contextmanager
def bulk_threads() -> Iterator[int]:
    """FAISS's threads for a write's bulk work (assigning a batch's tokens to IVF lists,
    k-means training): the cores idle right now, as an exhaustive scan takes them.

    OpenMP's default spreads every call over every core. On an idle machine that pays
    (a 1M-token build: 18.8 s wall and 31.9 CPU-s on two threads, 30.1 s and 29.5 on
    one), but when another process holds a core the barrier waits for a descheduled
    thread: a compact codebook's training took 17 s on two threads and 0.6 s on one.
    """
    import faiss

    wanted = threads_for(True, _in_flight + 1)
    before = faiss.omp_get_max_threads()
    if wanted != before:
        faiss.omp_set_num_threads(wanted)
    try:
        yield wanted
    finally:
        if faiss.omp_get_max_threads() != before:
            faiss.omp_set_num_threads(before)


@contextmanager
def _thread_counts(exhaustive: bool) -> Iterator[int]:
    global _in_flight
    with _lock:
        _in_flight += 1
        in_flight = _in_flight
    wanted = threads_for(exhaustive, in_flight)
    import faiss

    # An exhaustive scan loads torch's faster kernels; a process's first candidate search
    # goes without them, and its next one loads them (torch_use).
    load = exhaustive or torch_wanted()
    torch: Any = importlib.import_module("torch") if load else loaded_torch()
    before_torch = torch.get_num_threads() if torch is not None else 0
    before_faiss = faiss.omp_get_max_threads()
    try:
        if torch is not None and wanted != before_torch:
            torch.set_num_threads(wanted)
        if wanted != before_faiss:
            faiss.omp_set_num_threads(wanted)
        with rerank_choice(use_numpy=torch is None):
            if torch is None:  # numpy scores the blocks (index/maxsim_numpy.py)
                with blas_threads(wanted):
                    yield wanted
            else:
                yield wanted
    finally:
        if torch is not None and torch.get_num_threads() != before_torch:
            torch.set_num_threads(before_torch)
        if faiss.omp_get_max_threads() != before_faiss:
            faiss.omp_set_num_threads(before_faiss)
        with _lock:
            _in_flight -= 1
        if torch is None:
            warm_torch()


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter: Any = None  # threadpoolctl's limiter while any caller holds the limit
_blas_controller: Any = None


@contextmanager
def blas_threads(limit: int = 1) -> Iterator[None]:
    """numpy's BLAS on at most ``limit`` threads for the body.

    The numpy paths (a query through the numpy MiniLM, a rerank without torch) are many
    small matrix products. OpenBLAS splits each over every core and waits at a barrier:
    on the 2-core VM under load, a (5 x 384) @ (384 x 1536) product took 12 ms on two
    threads and 0.7 ms on one. The limit is set on the BLAS libraries with their own
    thread pool (numpy's wheels bring a pthreads OpenBLAS), whose count is process-wide,
    so callers share it: the first sets it, the last puts the original back. (OpenBLAS
    0.3.31 ignored a count set from another thread once one thread had set it, so a
    process searching from several threads at once may run some products on more
    threads; the CLI and a single-threaded caller set and restore on one thread.)
    OpenMP builds (FAISS's OpenBLAS) keep a count per calling thread, which
    search_threads sets for FAISS already; they are left alone here.
    """
    global _blas_users, _blas_limiter, _blas_controller
    with _blas_lock:
        if _blas_users == 0:
            from threadpoolctl import ThreadpoolController

            if _blas_controller is None:
                found = ThreadpoolController()
                own_pool = [
                    lib.filepath
                    for lib in found.lib_controllers
                    if lib.user_api == "blas" and getattr(lib, "threading_layer", "") == "pthreads"
                ]
                _blas_controller = found.select(filepath=own_pool)
            _blas_limiter = _blas_controller.limit(limits=limit, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None
