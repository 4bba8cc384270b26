"""The coordinator's IndexSync: it follows the change number and holds no vectors.

The coordinator is a :class:`~latestore.store.Store` for everything SQL answers
(writes, get, count, page_ids, filters, hydration); the ranking state lives on the
shards. This sync keeps the write path's bookkeeping (the change number its own
writes reached, how far the log was pruned) without loading a single vector.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from latestore.internal import IndexSync, StoreRow
from latestore.store import Store


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
