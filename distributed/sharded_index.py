"""ShardedIndex: a Store's derived index, split across shard actors on a Ray cluster.

``Store.open(url, index=ShardedIndex(shards=4))`` is a plain :class:`~latestore.Store`
(writes, reads, filters, full-text, every search mode) whose ranking step runs on the
shards; :class:`~latestore.distributed.ShardedStore` opens one the same way.

* **Searches** go through the Store's own search path: filters, phrases and the
  full-text side of the lexical and hybrid modes are read in SQL, here; the store
  then catches up (reads SQL's change number) and ranks with :meth:`ShardedIndex.ranker`,
  bound to that change number: every shard behind it replays the change log first. So
  a search sees every write committed before it started, by any process.
* **Ranking**: each shard returns its exact top ``k`` of the allowed pages it owns
  (a shard that owns none is not asked); the best ``k`` overall are kept, ties by
  smaller page id, as a single store orders them. Scoring named pages (the lexical
  hits of a hybrid search) sends each page to its owner.
* **Faults**: see :mod:`latestore.distributed.shard_calls`. A result is never partial.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import ray
from ray.exceptions import GetTimeoutError, RayActorError
from sqlalchemy import Engine

from latestore.distributed.placement import shard_of, split_by_shard
from latestore.distributed.shard import SearchReply, ShardServer
from latestore.distributed.shard_calls import ShardCalls
from latestore.errors import InvalidInputError
from latestore.internal import (
    PageIds,
    Queries,
    Ranking,
    ReadWriteLock,
    SearchParams,
    StoreRow,
)
from latestore.models import StoreConfig

if TYPE_CHECKING:
    from latestore.distributed.coordinator_sync import ShardedSync

DEFAULT_TIMEOUT_S = 120.0


def checked_shards(shards: object) -> int:
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise InvalidInputError(f"shards must be a positive integer, got {shards!r}")
    return shards


class ShardedIndex:
    """The derived index of one store on ``shards`` Ray actors (``Store.open(index=...)``).

    Ray must be initialised (``ray.init``), or it is started locally. Shards reload
    from ``snapshot_dir`` (a folder per shard; it must be reachable from the node the
    shard runs on) or, without one, from SQL. ``actor_options`` go to each actor
    (``num_gpus=1`` puts each shard on a GPU of its own). One ShardedIndex serves one
    store: the actors start when the store loads its index, and stop when it closes.
    """

    def __init__(
        self,
        shards: int = 2,
        *,
        snapshot_dir: str | Path | None = None,
        actor_options: Mapping[str, Any] | None = None,
        max_restarts: int = 3,
        retries: int = 2,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.initial_shards = checked_shards(shards)
        if retries < 0 or timeout_s <= 0:
            raise InvalidInputError("retries must be >= 0 and timeout_s > 0")
        self.calls = ShardCalls(retries, timeout_s, max_restarts)
        self.snapshot_dir = None if snapshot_dir is None else str(snapshot_dir)
        self.actor_options = {
            "max_restarts": max_restarts,
            "max_task_retries": 0,  # retried here, so a search knows it is complete
            "max_concurrency": 4,  # searches share a shard's index under its read lock
            **dict(actor_options or {}),
        }
        self.layout_lock = ReadWriteLock()
        self.actors: list[Any] = []
        self.url: str | None = None
        self.config: StoreConfig | None = None
        self.sync: ShardedSync | None = None

    # -- IndexSource: what Store.open calls --------------------------------------
    def load(
        self, engine: Engine, row: StoreRow, config: StoreConfig, index_dir: Path | None
    ) -> tuple[ShardedSync, str]:
        """Start the shards for the store at ``engine`` and wait until each has loaded
        its slice. ``index_dir`` is unused: the coordinator holds no vectors."""
        from latestore.distributed.coordinator_sync import ShardedSync
        from latestore.internal import LateInteractionIndex  # torch: when the store loads

        if self.url is not None:
            raise InvalidInputError("a ShardedIndex serves one store: make one per Store.open")
        self.url = engine.url.render_as_string(hide_password=False)
        self.config = config
        # Empty, and stays so: the store's upkeep (snapshot cadence, close) reads it.
        local = LateInteractionIndex(
            row.dim, config.memory.memory_dtype or row.vector_dtype, config.index_params(), "cpu"
        )
        sync = ShardedSync(engine, local, row.store_uuid, row.vector_dtype, None, shards=self)
        self.sync = sync
        try:
            self._start(range(self.initial_shards), self.initial_shards)
            return sync, sync.load()
        except BaseException:
            self.close()
            raise

    @property
    def n_shards(self) -> int:
        return len(self.actors)

    def _start(self, shard_numbers: range, n_shards: int) -> None:
        if not ray.is_initialized():
            ray.init()
        remote: Any = ray.remote(ShardServer).options(**self.actor_options)
        started = [
            remote.remote(self.url, i, n_shards, self.config, self.snapshot_dir)
            for i in shard_numbers
        ]
        self.actors += started
        ray.get([a.ready.remote() for a in started], timeout=self.calls.timeout_s * 10)

    def save(self) -> int:
        """Each shard snapshots its slice (with a ``snapshot_dir``); only shortens the
        next load, so a shard that cannot is skipped."""
        with contextlib.suppress(RayActorError, GetTimeoutError):
            saved = ray.get([a.save.remote() for a in self.actors], timeout=self.calls.timeout_s)
            return int(sum(saved))
        return 0

    def close(self) -> None:
        actors, self.actors = self.actors, []
        for actor in actors:
            ray.kill(actor)

    # -- search --------------------------------------------------------------------
    def ranker(self, min_change: int) -> ShardRanker:
        """What one search ranks with: the shards, each caught up to ``min_change``."""
        return ShardRanker(self, min_change)

    def search(
        self,
        queries: Queries,
        k: int,
        params: SearchParams,
        allowed: PageIds | None,
        exhaustive: bool,
        min_change: int,
    ) -> list[Ranking]:
        """Fan out to the shards and merge their exact top ``k`` per query."""
        with self.layout_lock.read():
            n = self.n_shards
            parts: list[PageIds | None] = (
                list(split_by_shard(allowed, n)) if allowed is not None else [None] * n
            )
            asked = [i for i, part in enumerate(parts) if part is None or len(part) > 0]
            shared = ray.put(queries)  # one copy in the object store, read by every shard
            replies: list[SearchReply] = self.calls.call_all(
                [self.actors[i] for i in asked],
                lambda i, a: a.search.remote(
                    shared, k, params, parts[i], exhaustive, min_change, (i, n)
                ),
                shards=asked,
            )
        return merge_rankings([r for r, _ in replies], len(queries), k)

    def score_pages(
        self, queries: Queries, pages: list[PageIds], params: SearchParams, min_change: int
    ) -> list[Ranking]:
        """Exact MaxSim of each query against its own pages, in their order, each page
        scored by the shard that owns it; pages no shard holds are left out."""
        with self.layout_lock.read():
            n = self.n_shards
            owners = [np.asarray(shard_of(ids, n), np.int64) for ids in pages]
            asked = sorted({int(s) for owner in owners for s in owner.tolist()})
            shared = ray.put(queries)
            replies: list[list[Ranking]] = self.calls.call_all(
                [self.actors[i] for i in asked],
                lambda i, a: a.score.remote(
                    shared,
                    [ids[owner == i] for ids, owner in zip(pages, owners, strict=True)],
                    params,
                    min_change,
                    (i, n),
                ),
                shards=asked,
            )
        out: list[Ranking] = []
        for qi, ids in enumerate(pages):
            found = {page: score for reply in replies for page, score in reply[qi]}
            out.append([(int(p), found[int(p)]) for p in ids.tolist() if int(p) in found])
        return out

    # -- layout and upkeep -------------------------------------------------------------
    def resize(self, shards: int) -> dict[str, int]:
        """Change the number of shards; stored vectors move, nothing is re-encoded.

        New shards load their slices from SQL; existing ones drop the pages that moved
        away (with jump hashing, growing moves pages only onto new shards). Searches
        wait for the change. Returns counts of pages dropped and loaded.
        """
        checked_shards(shards)
        with self.layout_lock.write():
            old = self.n_shards
            if shards > old:
                self._start(range(old, shards), shards)
            keep, gone = self.actors[:shards], self.actors[shards:]
            moves = self.calls.call_all(
                keep[:old],
                lambda i, a: a.relayout.remote(i, shards),
                shards=range(min(old, shards)),
            )
            for actor in gone:
                ray.kill(actor)
            self.actors = keep
        return {
            "dropped": sum(d for d, _ in moves),
            "loaded": sum(lo for _, lo in moves),
            "shards": shards,
        }

    def reindex(self) -> int:
        """Each shard rebuilds its candidate index from its vectors (and snapshots it)."""
        with self.layout_lock.read():
            tokens = self.calls.call_all(
                self.actors, lambda _i, a: a.reindex.remote(), shards=range(self.n_shards)
            )
        return int(sum(tokens))

    def stats(self) -> list[dict[str, Any]]:
        """One entry per shard: pages, tokens, memory, how it loaded."""
        with self.layout_lock.read():
            return self.calls.call_all(
                self.actors, lambda _i, a: a.stats.remote(), shards=range(self.n_shards)
            )

    def shard_pids(self) -> list[int]:
        """Process ids of the shard actors (tests kill one to exercise restarts)."""
        return [
            int(r["pid"])
            for r in self.calls.call_all(
                self.actors, lambda _i, a: a.ready.remote(), shards=range(self.n_shards)
            )
        ]


@dataclass(frozen=True)
class ShardRanker:
    """The shards as one search's RankingIndex (latestore.index.plan): every call of
    the search (a hybrid one makes two) asks them as of the same change number."""

    shards: ShardedIndex
    min_change: int

    def search(
        self,
        queries: Queries,
        k: int,
        params: SearchParams,
        allowed: PageIds | None = None,
        exhaustive: bool = False,
    ) -> list[Ranking]:
        return self.shards.search(queries, k, params, allowed, exhaustive, self.min_change)

    def score_pages(
        self, queries: Queries, pages: list[PageIds], params: SearchParams
    ) -> list[Ranking]:
        return self.shards.score_pages(queries, pages, params, self.min_change)


def merge_rankings(per_shard: list[list[Ranking]], n_queries: int, k: int) -> list[Ranking]:
    """The best ``k`` of the shards' rankings per query, ties by smaller page id.

    Pages are disjoint across shards and each shard's list is its exact top ``k``,
    so the merged list is the exact top ``k`` of the union.
    """
    merged: list[Ranking] = []
    for qi in range(n_queries):
        pairs = [pair for ranking in per_shard for pair in ranking[qi]]
        pairs.sort(key=lambda pair: (-float(np.float32(pair[1])), pair[0]))
        merged.append(pairs[:k])
    return merged
