"""The coordinator's IndexSync: it follows the change number and holds no vectors.

The coordinator is a :class:`~latestore.store.Store` for everything SQL answers
(writes, get, count, page_ids, filters, full-text, hydration); the ranking state
lives on the shards. This sync keeps the write path's bookkeeping (the change number
its own writes reached, how far the log was pruned) without loading a single vector;
:class:`ShardedSync` adds the shards, which the store ranks with.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select

from latestore.internal import IndexSync, StoreRow
from latestore.models import StoreStats
from latestore.store import Store

if TYPE_CHECKING:  # torch: the ingest writer (SqlOnlyStore) never loads it
    from latestore.distributed.sharded_index import ShardedIndex, ShardRanker
    from latestore.internal import LateInteractionIndex


class CoordinatorSync(IndexSync):
    def load(self) -> str:
        self.applied_change = self.last_change()
        with self.engine.connect() as conn:
            self.pruned_through = int(
                conn.execute(select(StoreRow.pruned_through).where(StoreRow.id == 1)).scalar_one()
            )
        return "coordinator"

    def catch_up(self) -> bool:
        head = self.last_change()
        moved = head > self.applied_change
        self.applied_change = max(self.applied_change, head)
        return moved

    def applied_own(self, change_no: int, page_ids: list[int], vectors: list[Any]) -> None:
        self.applied_change = max(self.applied_change, change_no)

    def save(self, *, strict: bool = False) -> int:
        return 0  # the shards snapshot their own slices


class SqlOnlyStore(Store):
    """A Store that writes and reads SQL and keeps no index: the writer of distributed
    ingestion and of bulk loads, where another process (the shards) ranks."""

    sync_class = CoordinatorSync


class ShardedSync(CoordinatorSync):
    """The sync of a store whose derived index is a :class:`ShardedIndex`: searches
    rank with the shards, as of the change number this sync caught up to."""

    def __init__(
        self,
        engine: Engine,
        index: LateInteractionIndex,
        store_uuid: str,
        dtype: str,
        index_dir: Path | None,
        *,
        shards: ShardedIndex,
    ) -> None:
        super().__init__(engine, index, store_uuid, dtype, index_dir)
        self.shards = shards

    def load(self) -> str:
        super().load()
        return "shards"

    def ranker(self) -> ShardRanker:
        # The store caught up just before (searcher): every write committed before the
        # search started is at or below this change number.
        return self.shards.ranker(self.applied_change)

    def rebuild(self) -> None:
        self.shards.reindex()

    def save(self, *, strict: bool = False) -> int:
        return self.shards.save()

    def describe(self, stats: StoreStats) -> StoreStats:
        shards = self.shards.stats()
        return ShardedStats(
            **stats.model_dump(exclude={"pages", "tokens", "index", "search_plan"}),
            pages=sum(s["pages"] for s in shards),
            tokens=sum(s["tokens"] for s in shards),
            index={"kind": "shards", "n_shards": len(shards)},
            search_plan=f"fan out to {len(shards)} shards, merge their exact top k",
            n_shards=len(shards),
            placement="jump consistent hash of the page id",
            shards=shards,
        )

    def close(self) -> None:
        super().close()
        self.shards.close()


class ShardedStats(StoreStats):
    """``Store.stats()`` of a sharded store: the totals over its shards, and each one."""

    n_shards: int
    placement: str
    shards: list[dict[str, Any]]
