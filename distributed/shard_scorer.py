"""The search plan's PageScorer over the shards of a ShardedStore.

:mod:`latestore.index.plan` is written against ``PageScorer.top_pages`` and
``score_pages``; this is the remote implementation of both: ``top_pages`` fans out
and merges every shard's exact top ``k``, ``score_pages`` sends each candidate page to
the shard that owns it (ShardedStore.score_pages). One contract
(tests/index/test_contract.py's) holds for it and the local scorers alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from latestore.internal import PageIds, Queries, Ranking

if TYPE_CHECKING:
    from latestore.distributed.coordinator import ShardedStore


class ShardScorer:
    def __init__(self, store: ShardedStore) -> None:
        self.store = store

    def top_pages(
        self, queries: Queries, k: int, pages: PageIds | None, exact: bool
    ) -> list[Ranking]:
        precision = "exact" if exact else "fast"
        config = self.store.config.model_copy(update={"device_precision": precision})
        return self.store.rank(queries, k, config, pages, exhaustive=True)

    def score_pages(
        self, queries: Queries, candidates: list[PageIds], exact: bool
    ) -> list[npt.NDArray[np.float32]]:
        return self.store.score_pages(queries, candidates, exact)
