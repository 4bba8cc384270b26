"""Thread pools with a bounded wait: the server's admission control.

The store's calls block (SQL, FAISS, the encoder), so they run in threads; FAISS, numpy
and torch release the GIL, so searches in different threads run in parallel, and the
store's read-write lock lets them share the index. A pool runs at most ``workers`` calls
at once and lets at most ``queue`` more wait; the next caller gets ServerBusy (503) at
once instead of piling up memory and latency.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


class ServerBusy(Exception):
    """The pool's queue is full."""

    def __init__(self, pool: str) -> None:
        super().__init__(f"the server is busy: the {pool} queue is full, try again shortly")


class WorkPool:
    def __init__(self, name: str, workers: int, queue: int) -> None:
        self.name = name
        self.workers = workers
        self.queue = queue
        self.running = 0
        self.waiting = 0
        self.refused = 0
        self._slots = anyio.Semaphore(workers)
        self._threads = anyio.CapacityLimiter(workers)

    async def run(self, call: Callable[[], T]) -> T:
        # The event loop is single-threaded: these counters need no lock.
        if self.running + self.waiting >= self.workers + self.queue:
            self.refused += 1
            raise ServerBusy(self.name)
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            return await anyio.to_thread.run_sync(call, limiter=self._threads)
        finally:
            self.running -= 1
            self._slots.release()

    def describe(self) -> dict[str, int]:
        return {
            "workers": self.workers,
            "queue": self.queue,
            "running": self.running,
            "waiting": self.waiting,
            "refused": self.refused,
        }
