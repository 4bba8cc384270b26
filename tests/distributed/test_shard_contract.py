"""The search plan's PageScorer contract, run against the shards of a ShardedStore.

The same test class as the local scorers (tests/index/test_contract.py): exact top-k
and per-candidate MaxSim equal to the brute-force reference. The pages live in a real
PostgreSQL database (float32, so no storage rounding) and on three Ray shard actors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from latestore import IndexConfig, Page, PrecomputedVectors, StorageConfig, StoreConfig
from tests.index import test_contract as contract

pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")

from latestore.distributed import ShardedStore  # noqa: E402
from latestore.distributed.shard_scorer import ShardScorer  # noqa: E402
from latestore.index.plan import PageScorer  # noqa: E402

EXACT_FLOAT32 = StoreConfig(
    storage=StorageConfig(vector_dtype="float32"), index=IndexConfig(ivf_codec="none")
)


@pytest.fixture(scope="module")
def sharded_pages(ray_session: Any, pg_database: str) -> Iterator[tuple[ShardedStore, Any]]:
    corpus = contract.corpus(np.random.default_rng(7), n=40)
    encoder = PrecomputedVectors(dim=contract.DIM)
    with ShardedStore.open(pg_database, encoder, shards=3, config=EXACT_FLOAT32) as store:
        ids = store.add_pages([Page(vectors=v) for v in corpus.values()])
        yield store, dict(zip(ids, corpus.values(), strict=True))


class TestShardScorerContract(contract.TestPageScorerContract):
    @pytest.fixture
    def pages(self, sharded_pages: tuple[ShardedStore, Any]) -> Any:
        return sharded_pages[1]

    @pytest.fixture
    def scorer(self, sharded_pages: tuple[ShardedStore, Any]) -> PageScorer:
        return ShardScorer(sharded_pages[0].shards)
