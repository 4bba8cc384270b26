"""IndexSync for one shard: the same load, replay and catch-up, over a slice of pages.

Everything the single store does to stay in step with SQL (snapshot, replay of the
change log, full reload when the log was pruned) is inherited unchanged; only the
reads of page vectors are narrowed to the pages this shard owns. A change to a page
of another shard is then a no-op here: ``_reapply`` removes it (absent) and reads
nothing back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, select

from latestore.distributed.placement import shard_of
from latestore.internal import IndexSync, LateInteractionIndex, PageVectorsRow


class ShardSync(IndexSync):
    """Keeps the index of shard ``shard`` of ``n_shards`` in step with SQL."""

    def __init__(
        self,
        engine: Engine,
        index: LateInteractionIndex,
        store_uuid: str,
        dtype: str,
        index_dir: Path | None,
        *,
        shard: int,
        n_shards: int,
    ) -> None:
        super().__init__(engine, index, store_uuid, dtype, index_dir)
        self.shard = shard
        self.n_shards = n_shards

    def owns(self, page_ids: list[int] | npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        mine: npt.NDArray[np.bool_] = shard_of(page_ids, self.n_shards) == self.shard
        return mine

    def stored_ids(self) -> list[int]:
        """Ids of every page with vectors in SQL that this shard owns (ids only: cheap)."""
        with self.engine.connect() as conn:
            rows = conn.execution_options(yield_per=50_000).execute(
                select(PageVectorsRow.page_id).order_by(PageVectorsRow.page_id)
            )
            ids = np.fromiter((int(r[0]) for r in rows), dtype=np.int64)
        owned: list[int] = ids[self.owns(ids)].tolist()
        return owned

    def _read_vectors(
        self, page_ids: list[int] | None = None
    ) -> Iterator[tuple[int, npt.NDArray[Any]]]:
        if page_ids is None:
            wanted = self.stored_ids()
        else:
            mask = self.owns(page_ids)
            wanted = [p for p, mine in zip(page_ids, mask.tolist(), strict=True) if mine]
        if not wanted:
            return iter(())
        return super()._read_vectors(wanted)

    def relayout(self, shard: int, n_shards: int) -> tuple[int, int]:
        """Take the slice of a new layout: drop pages now owned elsewhere, load the
        pages newly owned from SQL (stored vectors: nothing is re-encoded).

        Returns ``(dropped, loaded)`` page counts. The caller holds the index lock.
        """
        self.catch_up()
        # The vector folder belongs to the old layout: pages of the new one stay in
        # memory until the shard is next loaded (from the new layout's folder).
        self.index.vectors.detach()
        self.shard, self.n_shards = shard, n_shards
        held = self.index.vectors.page_ids()
        dropped = held[~self.owns(held)].tolist() if len(held) else []
        self.index.remove(dropped)
        held_set = set(held.tolist()) - set(dropped)
        missing = [p for p in self.stored_ids() if p not in held_set]
        self._reapply(missing)
        self.snapshot_change = -1  # the slice changed: the next save must write
        return len(dropped), len(missing)
