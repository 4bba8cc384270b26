"""Exact ranking from resident pages (device_rank) against the CPU index, under budgets.

The kernel runs compiled on CUDA and in Triton's interpreter on the CPU (CI).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latestore.index.device_rank import _group_queries, exact_topk, rerank_pairs
from latestore.index.device_search import DeviceTokenSearch
from latestore.index.late_index import LateInteractionIndex
from latestore.index.maxsim import maxsim_reference
from latestore.index.maxsim_launch import query_bytes
from latestore.index.ranking import SearchParams
from latestore.index.token_index import IndexParams
from tests.index.kernel_cases import DEVICE, unit

DIM = 32


def corpus(rng: np.random.Generator, n: int = 60) -> dict[int, np.ndarray]:
    # Sparse, unordered ids: ranking must not assume ids are positions.
    ids = rng.choice(np.arange(1, 10 * n), size=n, replace=False)
    return {int(p): unit(rng, int(rng.integers(1, 50)), DIM) for p in ids}


def device_search(pages: dict[int, np.ndarray], budget: int = 1 << 26) -> DeviceTokenSearch:
    search = DeviceTokenSearch(DIM, DEVICE, dtype=torch.float32, budget_bytes=budget)
    ids = list(pages)
    for start in range(0, len(ids), 17):
        chunk = ids[start : start + 17]
        search.add(chunk, [pages[p] for p in chunk])
    return search


def reference_ranking(
    query: np.ndarray, pages: dict[int, np.ndarray], k: int
) -> list[tuple[int, float]]:
    ids = sorted(pages)
    scores = maxsim_reference(query, [pages[p] for p in ids])
    order = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))[:k]
    return [(ids[i], float(scores[i])) for i in order]


def assert_same(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [p for p, _ in got] == [p for p, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5)


def test_exact_topk_equals_reference_through_deletes(rng: np.random.Generator) -> None:
    pages = corpus(rng)
    search = device_search(pages)
    queries = [unit(rng, n, DIM) for n in (1, 8, 32)]
    for query, got in zip(queries, exact_topk(search, queries, 10), strict=True):
        assert_same(got, reference_ranking(query, pages, 10))
    gone = list(pages)[::2]
    search.remove(gone)  # half the rows: compaction moves every page
    for p in gone:
        del pages[p]
    for query, got in zip(queries, exact_topk(search, queries, 10), strict=True):
        assert_same(got, reference_ranking(query, pages, 10))


def test_filter_restricts_and_unknown_ids_are_ignored(rng: np.random.Generator) -> None:
    pages = corpus(rng)
    search = device_search(pages)
    allowed = np.array([*list(pages)[:7], 10**9], dtype=np.int64)
    query = unit(rng, 6, DIM)
    got = exact_topk(search, [query], 20, allowed)[0]
    want = reference_ranking(query, {p: pages[p] for p in list(pages)[:7]}, 20)
    assert_same(got, want)
    assert exact_topk(search, [query], 5, np.array([10**9], dtype=np.int64)) == [[]]


def test_ties_rank_the_smaller_page_id_first(rng: np.random.Generator) -> None:
    page = unit(rng, 9, DIM)
    search = device_search({40: page, 7: page, 300: page, 12: unit(rng, 3, DIM)})
    got = exact_topk(search, [unit(rng, 4, DIM)], 3)[0]
    assert [p for p, _ in got] == [7, 40, 300]
    assert got[0][1] == got[1][1] == got[2][1]


@pytest.mark.slow
def test_a_tiny_budget_gives_the_same_results_in_more_pieces(rng: np.random.Generator) -> None:
    pages = corpus(rng, 80)
    queries = [unit(rng, int(n), DIM) for n in rng.integers(1, 40, size=12)]
    roomy = exact_topk(device_search(pages), queries, 7)
    tight_budget = 16 << 10
    tight = device_search(pages, budget=tight_budget)
    groups = _group_queries(queries, DIM, tight_budget)
    assert len(groups) > 1  # queries were split into groups
    for group in groups:  # each group's padded copy fits its share of the budget
        widest = max(len(queries[i]) for i in group)
        assert len(group) == 1 or query_bytes(len(group), widest, DIM) <= tight_budget // 4
    for a, b in zip(roomy, exact_topk(tight, queries, 7), strict=True):
        assert_same(b, a)
    # The candidate token search is bounded the same way.
    stacked = np.concatenate(queries)
    flat = device_search(pages).search(stacked, 5)
    small = tight.search(stacked, 5)
    np.testing.assert_allclose(small[0], flat[0], rtol=1e-6)
    np.testing.assert_array_equal(small[1], flat[1])


def test_rerank_pairs_scores_each_querys_candidates(rng: np.random.Generator) -> None:
    pages = corpus(rng)
    search = device_search(pages)
    ids = list(pages)
    queries = [unit(rng, n, DIM) for n in (3, 20, 11)]
    candidates = [np.array(ids[:5]), np.array([], dtype=np.int64), np.array(ids[10:40])]
    got = rerank_pairs(search, queries, candidates)
    for query, cands, scores in zip(queries, candidates, got, strict=True):
        want = maxsim_reference(query, [pages[int(p)] for p in cands]) if len(cands) else []
        np.testing.assert_allclose(scores, want, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_index_ranks_on_device_like_the_cpu_index(rng: np.random.Generator, dtype: str) -> None:
    """The whole plan: device exact by default, pairs rerank when asked for candidates."""
    params = IndexParams(ivf_min_tokens=10**9)
    pages = corpus(rng, 90)
    ids = sorted(pages)
    cpu = LateInteractionIndex(DIM, dtype, params, "cpu")
    dev = LateInteractionIndex(DIM, dtype, params, str(DEVICE), kernel=True)
    for index in (cpu, dev):
        index.upsert(ids, [pages[p] for p in ids])
    assert dev.ranks_on_device and "exact" in dev.plan(SearchParams())
    assert dev.device_tokens is not None
    assert dev.device_tokens.quantized == (dtype == "int8")  # int8 stays int8 on the device
    queries = [unit(rng, n, DIM) for n in (4, 16)]
    allowed = np.array(ids[::3], dtype=np.int64)
    exhaustive = SearchParams(exhaustive_max_tokens=0)
    for flt in (None, allowed):
        want = cpu.search(queries, 8, exhaustive, allowed=flt, exhaustive=True)
        got = dev.search(queries, 8, SearchParams(), allowed=flt)
        for g, w in zip(got, want, strict=True):
            assert_same(g, w)
    # Candidates + a pairs rerank on the device give exactly the CPU's candidate ranking.
    candidates = SearchParams(exhaustive_max_tokens=0, device_exact=False, n_rerank=40)
    dev_cands = LateInteractionIndex(
        DIM, dtype, params, str(DEVICE), kernel=True, candidate_search="faiss"
    )
    dev_cands.upsert(ids, [pages[p] for p in ids])
    for g, w in zip(
        dev_cands.search(queries, 8, candidates), cpu.search(queries, 8, candidates), strict=True
    ):
        assert_same(g, w)


def test_store_too_large_for_the_device_falls_back_to_candidates(
    rng: np.random.Generator,
) -> None:
    params = IndexParams(ivf_min_tokens=10**9)
    pages = corpus(rng, 40)
    ids = sorted(pages)
    index = LateInteractionIndex(
        DIM, "float32", params, str(DEVICE), kernel=True, max_device_bytes=2_000
    )
    index.upsert(ids, [pages[p] for p in ids])
    assert index.device_tokens is None and not index.ranks_on_device
    assert index.device_fallback is not None and "over the" in index.plan(SearchParams())
    query = unit(rng, 5, DIM)
    got = index.search([query], 5, SearchParams(exhaustive_max_tokens=0), exhaustive=True)[0]
    assert_same(got, reference_ranking(query, pages, 5))
    # Once it fits again (a larger allowance, then a refill), pages are resident again.
    index.max_device_bytes = None
    index.rebuild()
    assert index.ranks_on_device
    assert_same(index.search([query], 5, SearchParams())[0], reference_ranking(query, pages, 5))


def test_fast_precision_is_a_query_time_choice(rng: np.random.Generator) -> None:
    params = IndexParams(ivf_min_tokens=10**9)
    pages = corpus(rng, 50)
    ids = sorted(pages)
    index = LateInteractionIndex(DIM, "float16", params, str(DEVICE), kernel=True)
    index.upsert(ids, [pages[p] for p in ids])
    query = unit(rng, 8, DIM)
    exact = index.search([query], 5, SearchParams())[0]
    fast = index.search([query], 5, SearchParams(device_precision="fast"))[0]
    stored = {p: pages[p].astype(np.float16).astype(np.float32) for p in ids}
    want = reference_ranking(query, stored, 5)
    np.testing.assert_allclose([s for _, s in exact], [s for _, s in want], rtol=2e-6)
    np.testing.assert_allclose([s for _, s in fast], [s for _, s in want], rtol=2e-3)
    assert [s for _, s in fast] != [s for _, s in exact]  # a different product was used
