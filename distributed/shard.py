"""A shard server: the derived index of one slice of the pages, loaded from SQL.

It is a plain class; the coordinator runs it as a Ray actor (``ray.remote`` with
``max_restarts``), so a killed shard comes back through this same constructor and
reloads: from its snapshot folder when it has one, else from SQL.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from latestore.distributed.shard_sync import ShardSync
from latestore.internal import (
    LateInteractionIndex,
    Ranking,
    ReadWriteLock,
    SearchParams,
    make_engine,
    merged_config,
    stored_row,
)
from latestore.models import StoreConfig

SearchReply = tuple[list[Ranking], int]


def shard_folder(snapshot_dir: str | Path | None, shard: int, n_shards: int) -> Path | None:
    """Where shard ``shard`` of ``n_shards`` keeps its snapshot: one folder per layout,
    so a slice of one layout is never taken for a slice of another."""
    if snapshot_dir is None:
        return None
    return Path(snapshot_dir) / f"shard-{shard}-of-{n_shards}"


class ShardServer:
    """Holds and searches the pages that :func:`~latestore.distributed.placement.shard_of`
    gives to ``shard``; catches up with SQL's change log before ranking when behind."""

    def __init__(
        self,
        url: str,
        shard: int,
        n_shards: int,
        config: StoreConfig | None = None,
        snapshot_dir: str | None = None,
    ) -> None:
        started = time.perf_counter()
        # A shard is a long-running server: it ranks with torch's kernels from its first
        # search, as `serve` does. The torch-free numpy rerank (for one-off CLI calls)
        # rounds differently in the last float32 bit, and a restarted shard must give
        # the scores its predecessor gave.
        import torch  # noqa: F401

        self.url = url
        self.snapshot_dir = snapshot_dir
        self.engine = make_engine(url)
        row = stored_row(self.engine)
        if row is None:
            raise RuntimeError(f"no latestore store at {url}")
        self.config = merged_config(row, config)
        folder = shard_folder(snapshot_dir, shard, n_shards)
        # mapped from the shard folder's vector file, like a single store's
        index = LateInteractionIndex.from_config(row.dim, row.vector_dtype, self.config)
        self.sync = ShardSync(
            self.engine,
            index,
            row.store_uuid,
            row.vector_dtype,
            folder,
            shard=shard,
            n_shards=n_shards,
        )
        self.lock = ReadWriteLock()
        self._catch_up_lock = threading.Lock()
        self.opened_from = self.sync.load()
        self.load_seconds = time.perf_counter() - started
        self.pid = os.getpid()

    def ready(self) -> dict[str, Any]:
        """Answers once loading is done: the coordinator waits on it after a restart."""
        return {"shard": self.sync.shard, "pid": self.pid, "opened_from": self.opened_from}

    def search(
        self,
        queries: list[npt.NDArray[np.float32]],
        k: int,
        params: SearchParams,
        allowed: npt.NDArray[np.int64] | None,
        exhaustive: bool,
        min_change: int,
        layout: tuple[int, int],
    ) -> SearchReply:
        """Top ``k`` of this shard's pages per query, as of change ``min_change`` at least.

        ``allowed`` holds (a superset of) the filtered pages this shard owns; None: all.
        ``layout`` is the coordinator's ``(shard, n_shards)`` for this actor: Ray
        restarts an actor with its first arguments, so one restarted after a resize
        takes its current slice here before it answers.
        """
        queries = self._prepare(queries, min_change, layout)
        with self.lock.read():
            rankings = self.sync.index.search(
                queries, k, params, allowed=allowed, exhaustive=exhaustive
            )
            return rankings, self.sync.applied_change

    def score(
        self,
        queries: list[npt.NDArray[np.float32]],
        pages: list[npt.NDArray[np.int64]],
        params: SearchParams,
        min_change: int,
        layout: tuple[int, int],
    ) -> list[Ranking]:
        """Exact MaxSim of each query against its own pages of this shard, in order
        (pages it does not hold left out): the shard's half of ``score_pages``."""
        queries = self._prepare(queries, min_change, layout)
        pages = [np.array(p, dtype=np.int64) for p in pages]
        with self.lock.read():
            return self.sync.index.score_pages(queries, pages, params)

    def _prepare(
        self,
        queries: list[npt.NDArray[np.float32]],
        min_change: int,
        layout: tuple[int, int],
    ) -> list[npt.NDArray[np.float32]]:
        if layout != (self.sync.shard, self.sync.n_shards):
            self.relayout(*layout)
        if self.sync.applied_change < min_change:
            # One catch-up at a time; searches that queued behind it find it done.
            with self._catch_up_lock:
                if self.sync.applied_change < min_change:
                    with self.lock.write():
                        self.sync.catch_up()
        # Arguments from Ray's object store are read-only views; torch wants to own them.
        return [np.array(q, dtype=np.float32) for q in queries]

    def relayout(self, shard: int, n_shards: int) -> tuple[int, int]:
        with self.lock.write():
            moved = self.sync.relayout(shard, n_shards)
            self.sync.index_dir = shard_folder(self.snapshot_dir, shard, n_shards)
            return moved

    def save(self) -> int:
        with self.lock.write():
            return self.sync.save()

    def reindex(self) -> int:
        """Rebuild this shard's candidate index from its vectors; returns its tokens."""
        with self.lock.write():
            self.sync.catch_up()
            self.sync.index.rebuild()
            self.sync.snapshot_change = -1
            self.sync.save()
            return int(self.sync.index.vectors.total_tokens)

    def stats(self) -> dict[str, Any]:
        with self.lock.read():
            index = self.sync.index
            vectors = index.vectors
            return {
                "shard": self.sync.shard,
                "n_shards": self.sync.n_shards,
                "pid": self.pid,
                "pages": len(vectors),
                "tokens": vectors.total_tokens,
                "vector_bytes": vectors.total_tokens * index.dim * vectors.dtype.itemsize,
                "index": index.tokens.describe(),
                "change_no": self.sync.applied_change,
                "opened_from": self.opened_from,
                "load_seconds": round(self.load_seconds, 3),
                "rss_bytes": _rss_bytes(),
            }


def _rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 where it is not available)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
