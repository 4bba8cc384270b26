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
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import torch

_lock = threading.Lock()
_in_flight = 0


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


@contextmanager
def search_threads(exhaustive: bool = False) -> Iterator[int]:
    """Run the body with this call's thread count in torch and FAISS; yields it."""
    global _in_flight
    with _lock:
        _in_flight += 1
        in_flight = _in_flight
    wanted = threads_for(exhaustive, in_flight)
    before_torch = torch.get_num_threads()
    before_faiss = faiss.omp_get_max_threads()
    try:
        if wanted != before_torch:
            torch.set_num_threads(wanted)
        if wanted != before_faiss:
            faiss.omp_set_num_threads(wanted)
        yield wanted
    finally:
        if torch.get_num_threads() != before_torch:
            torch.set_num_threads(before_torch)
        if faiss.omp_get_max_threads() != before_faiss:
            faiss.omp_set_num_threads(before_faiss)
        with _lock:
            _in_flight -= 1
