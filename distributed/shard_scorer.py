"""The search plan's PageScorer over the shards of a ShardedIndex.

:mod:`latestore.index.plan` is written against ``PageScorer.top_pages`` and
``score_pages``; this is the remote implementation of both, over the same fan-out a
sharded store's searches use (``ShardedIndex.search`` and ``score_pages``):
``top_pages`` merges every shard's exact top ``k``, ``score_pages`` sends each
candidate page to the shard that owns it. One contract (tests/index/test_contract.py's)
holds for it and the local scorers alike (tests/distributed/test_shard_contract.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from latestore.internal import PageIds, Queries, Ranking, SearchParams

if TYPE_CHECKING:
    from latestore.distributed.sharded_index import ShardedIndex


class ShardScorer:
    """Each call reads SQL's change number once and asks the shards as of it."""

    def __init__(self, shards: ShardedIndex) -> None:
        if shards.sync is None or shards.config is None:
            raise ValueError("the ShardedIndex has not been loaded by a store yet")
        self.shards = shards
        self.sync = shards.sync
        self.config = shards.config

    def _params(self, exact: bool) -> SearchParams:
        precision = "exact" if exact else "fast"
        return self.config.updated({"device_precision": precision}).search_params()

    def top_pages(
        self, queries: Queries, k: int, pages: PageIds | None, exact: bool
    ) -> list[Ranking]:
        head = self.sync.last_change()
        return self.shards.search(queries, k, self._params(exact), pages, True, head)

    def score_pages(
        self, queries: Queries, candidates: list[PageIds], exact: bool
    ) -> list[npt.NDArray[np.float32]]:
        head = self.sync.last_change()
        found = self.shards.score_pages(queries, candidates, self._params(exact), head)
        out = []
        for ids, ranking in zip(candidates, found, strict=True):
            if len(ranking) != len(ids):
                missing = sorted(set(ids.tolist()) - {p for p, _ in ranking})
                raise LookupError(f"no shard holds pages {missing[:10]}")
            out.append(np.asarray([score for _, score in ranking], dtype=np.float32))
        return out
