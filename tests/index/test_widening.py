"""Candidate settings widen with the tokens a query may see (SearchParams.widened)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from latestore.index import plan
from latestore.index.late_index import LateInteractionIndex
from latestore.index.ranking import MAX_WIDE_K_PER_TOKEN, SearchParams
from latestore.index.scorers import FaissCandidates
from latestore.index.token_index import IndexParams


def test_settings_hold_up_to_the_reference_then_grow_with_the_square_root() -> None:
    params = SearchParams(k_per_token=128, n_rerank=256)
    assert params.widened(1_000_000) is params
    assert params.widened(10) is params
    wide = params.widened(16_000_000)
    assert (wide.k_per_token, wide.n_rerank) == (512, 777)
    assert (wide.nprobe, wide.exhaustive_max_tokens) == (
        params.nprobe,
        params.exhaustive_max_tokens,
    )
    assert (params.widened(64_000_000).k_per_token, params.widened(64_000_000).n_rerank) == (
        1024,
        1352,
    )
    assert params.widened(10**13).k_per_token == MAX_WIDE_K_PER_TOKEN


def test_zero_keeps_the_settings_fixed() -> None:
    params = SearchParams(widen_above_tokens=0)
    assert params.widened(10**12) is params


class Recording(FaissCandidates):
    """The real FAISS candidates, remembering the k of each token search."""

    asked: list[int]

    def search_tokens(
        self, queries: npt.NDArray[np.float32], k: int, nprobe: int, allowed: Any
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        self.asked.append(k)
        return super().search_tokens(queries, k, nprobe, allowed)


def test_the_plan_widens_by_the_tokens_of_the_pages_a_query_may_see(
    rng: np.random.Generator,
) -> None:
    index = LateInteractionIndex(16, "float32", IndexParams(ivf_codec="none"), device="cpu")
    pages = [rng.standard_normal((10, 16)).astype(np.float32) for _ in range(400)]
    index.upsert(list(range(400)), pages)  # 4,000 tokens
    source = Recording(index.tokens)
    source.asked = []
    query = [rng.standard_normal((3, 16)).astype(np.float32)]
    params = SearchParams(k_per_token=4, n_rerank=8, exhaustive_max_tokens=0)

    def run(widen_above: int, allowed: npt.NDArray[np.int64] | None) -> None:
        chosen = SearchParams(**{**params.__dict__, "widen_above_tokens": widen_above})
        hits = plan.run(query, 5, chosen, allowed, index.universe, index.scorer(), source)
        assert len(hits[0]) == 5

    run(1_000, None)  # 4x the reference: twice the tokens per query token
    run(0, None)
    run(1_000, np.arange(100, dtype=np.int64))  # a filter leaves 1,000 tokens: no widening
    assert source.asked == [8, 4, 4]
