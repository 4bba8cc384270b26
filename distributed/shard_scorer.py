"""The search plan's PageScorer over the shards of a ShardedStore.

:mod:`latestore.index.plan` is written against ``PageScorer.top_pages`` and
``score_pages``; this is the remote implementation of both: ``top_pages`` fans out
and merges every shard's exact top ``k``, ``score_pages`` sends each candidate page to
the shard that owns it and puts the scores back in the caller's order. One contract
(tests/index/test_contract.py's) holds for it and the local scorers alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import ray

from latestore.distributed.placement import shard_of
from latestore.index.plan import PageIds, Queries
from latestore.index.ranking import Ranking

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
        store = self.store
        min_change = store._sync.last_change()
        with store._layout_lock.read():
            n = store.n_shards
            owners = [np.asarray(shard_of(pages, n), np.int64) for pages in candidates]
            asked = sorted({int(s) for owner in owners for s in owner.tolist()})
            shared = ray.put(queries)
            replies = store._call_all(
                [store._actors[i] for i in asked],
                lambda i, a: a.score.remote(
                    shared,
                    [pages[owner == i] for pages, owner in zip(candidates, owners, strict=True)],
                    exact,
                    min_change,
                    (i, n),
                ),
                shards=asked,
            )
        out = [np.zeros(len(pages), np.float32) for pages in candidates]
        for shard, scores in zip(asked, replies, strict=True):
            for qi, owner in enumerate(owners):
                out[qi][owner == shard] = scores[qi]
        return out
