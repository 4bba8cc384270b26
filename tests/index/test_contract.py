"""One contract for every implementation of the search plan's protocols.

Each PageScorer must rank exactly as the brute-force MaxSim reference, and each
TokenCandidates must return the true nearest page tokens within the allowed pages.
The kernel runs compiled on CUDA and in Triton's interpreter on the CPU (CI); the
FAISS index is the real one, flat so that its answer is exact.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from latestore.index import maxsim_launch
from latestore.index.device_search import DeviceTokenSearch
from latestore.index.plan import PageScorer, TokenCandidates
from latestore.index.scorers import (
    FaissCandidates,
    GatherScorer,
    KernelScorer,
    TorchCandidates,
)
from latestore.index.token_index import TOKEN_BITS, IndexParams, TokenIndex
from latestore.index.vectors import VectorCache
from tests.index.kernel_cases import DEVICE, unit
from tests.index.test_device_rank import assert_same, corpus, reference_ranking

DIM = 32
Pages = dict[int, np.ndarray]


def _device(pages: Pages) -> DeviceTokenSearch:
    search = DeviceTokenSearch(DIM, DEVICE, dtype=torch.float32, budget_bytes=1 << 26)
    search.add(list(pages), list(pages.values()))
    return search


def _host_scorer(pages: Pages) -> PageScorer:
    cache = VectorCache(DIM, "float32")
    for page_id, vectors in pages.items():
        cache.put(page_id, vectors)
    return GatherScorer(cache.gather, cache.page_ids)


def _device_gather_scorer(pages: Pages) -> PageScorer:
    search = _device(pages)
    return GatherScorer(search.gather, lambda: np.asarray(sorted(pages), np.int64))


def _kernel_scorer(pages: Pages) -> PageScorer:
    if not maxsim_launch.available():
        pytest.skip("triton is not installed")
    return KernelScorer(_device(pages))


def _faiss_candidates(pages: Pages) -> TokenCandidates:
    tokens = TokenIndex(DIM, IndexParams(ivf_codec="none"))
    tokens.add(list(pages), list(pages.values()))
    return FaissCandidates(tokens)


def _torch_candidates(pages: Pages) -> TokenCandidates:
    return TorchCandidates(_device(pages))


SCORERS: dict[str, Callable[[Pages], PageScorer]] = {
    "host-gather": _host_scorer,
    "device-gather": _device_gather_scorer,
    "fused-kernel": _kernel_scorer,
}
CANDIDATES: dict[str, Callable[[Pages], TokenCandidates]] = {
    "faiss-flat": _faiss_candidates,
    "torch-device": _torch_candidates,
}


@pytest.fixture(scope="module")
def pages() -> Pages:
    return corpus(np.random.default_rng(7), n=40)


@pytest.fixture(params=sorted(SCORERS))
def scorer(request: pytest.FixtureRequest, pages: Pages) -> PageScorer:
    return SCORERS[request.param](pages)


@pytest.fixture(params=sorted(CANDIDATES))
def candidates(request: pytest.FixtureRequest, pages: Pages) -> TokenCandidates:
    return CANDIDATES[request.param](pages)


class TestPageScorerContract:
    def test_top_pages_over_everything_held(self, scorer: PageScorer, pages: Pages) -> None:
        rng = np.random.default_rng(1)
        queries = [unit(rng, n, DIM) for n in (1, 5, 32)]
        for query, got in zip(queries, scorer.top_pages(queries, 7, None, True), strict=True):
            assert_same(got, reference_ranking(query, pages, 7))

    def test_top_pages_within_a_subset(self, scorer: PageScorer, pages: Pages) -> None:
        rng = np.random.default_rng(2)
        subset = np.asarray(sorted(pages)[::3], dtype=np.int64)
        query = unit(rng, 9, DIM)
        (got,) = scorer.top_pages([query], 5, subset, True)
        assert_same(got, reference_ranking(query, {int(p): pages[int(p)] for p in subset}, 5))

    def test_k_larger_than_the_pages(self, scorer: PageScorer, pages: Pages) -> None:
        subset = np.asarray(sorted(pages)[:3], dtype=np.int64)
        query = unit(np.random.default_rng(3), 4, DIM)
        (got,) = scorer.top_pages([query], 50, subset, True)
        assert sorted(p for p, _ in got) == subset.tolist()

    def test_score_pages_keeps_each_querys_candidate_order(
        self, scorer: PageScorer, pages: Pages
    ) -> None:
        rng = np.random.default_rng(4)
        ids = sorted(pages)
        queries = [unit(rng, 6, DIM), unit(rng, 3, DIM), unit(rng, 2, DIM)]
        chosen = [
            np.asarray(ids[5:0:-1], np.int64),
            np.zeros(0, np.int64),
            np.asarray([ids[-1], ids[0]], np.int64),
        ]
        got = scorer.score_pages(queries, chosen, True)
        assert len(got[1]) == 0
        for query, pages_of, scores in zip(queries, chosen, got, strict=True):
            want = [float((query @ pages[int(p)].T).max(axis=1).sum()) for p in pages_of.tolist()]
            np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-6)


class TestTokenCandidatesContract:
    def test_nearest_tokens_are_the_true_ones(
        self, candidates: TokenCandidates, pages: Pages
    ) -> None:
        query = unit(np.random.default_rng(5), 4, DIM)
        scores, ids = candidates.search_tokens(query, 10, 1, None)
        everything = {
            (p << TOKEN_BITS) | t: query @ v[t] for p, v in pages.items() for t in range(len(v))
        }
        for row in range(len(query)):
            best = sorted(everything, key=lambda i: -everything[i][row])[:10]
            want = np.asarray([everything[i][row] for i in best])
            np.testing.assert_allclose(np.sort(scores[row])[::-1], want, rtol=1e-5, atol=1e-6)
            assert set(ids[row].tolist()) == set(best)

    def test_only_allowed_pages_come_back(self, candidates: TokenCandidates, pages: Pages) -> None:
        allowed = np.asarray(sorted(pages)[:2], dtype=np.int64)
        held = sum(len(pages[int(p)]) for p in allowed)
        query = unit(np.random.default_rng(6), 3, DIM)
        _, ids = candidates.search_tokens(query, held + 5, 1, allowed)
        found = ids[ids >= 0]
        assert set((found >> TOKEN_BITS).tolist()) <= set(allowed.tolist())
        # Every allowed token is found once per query token, the rest is padding.
        assert (ids >= 0).sum(axis=1).tolist() == [held] * len(query)
