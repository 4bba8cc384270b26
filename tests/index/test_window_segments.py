"""Best-window scoring in every exact scorer of the index, against brute force.

Random pages, some split into windows; each scorer (the CPU blocks and gather paths,
the fused kernel's exact top-k and pairs rerank, in Triton's interpreter without CUDA,
and the whole LateInteractionIndex plan) must give each page its best window's MaxSim,
and leave unsplit pages (and the union mode) as plain MaxSim.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latestore.encoders.windows import best_window_maxsim
from latestore.index.late_index import LateInteractionIndex
from latestore.index.ranking import SearchParams
from latestore.index.scorers import GatherScorer
from latestore.index.segments import best_of, window_lengths
from latestore.index.token_index import IndexParams
from latestore.index.vectors import VectorCache
from tests.index.kernel_cases import DEVICE, unit

DIM = 32


def corpus(
    rng: np.random.Generator, n: int = 40
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Pages (sparse ids) and the rows per window of about half of them."""
    ids = rng.choice(np.arange(1, 10 * n), size=n, replace=False)
    pages, windows = {}, {}
    for p in ids.tolist():
        if rng.random() < 0.5:
            counts = rng.integers(1, 30, size=int(rng.integers(2, 6)))
            windows[p] = counts.astype(np.int64)
            pages[p] = unit(rng, int(counts.sum()), DIM)
        else:
            pages[p] = unit(rng, int(rng.integers(1, 50)), DIM)
    return pages, windows


def want_scores(
    query: np.ndarray, pages: dict[int, np.ndarray], windows: dict[int, np.ndarray]
) -> dict[int, float]:
    return {
        p: best_window_maxsim(query, v, windows.get(p, np.array([len(v)])))
        for p, v in pages.items()
    }


def reference(want: dict[int, float], k: int) -> list[tuple[int, float]]:
    return [(p, want[p]) for p in sorted(want, key=lambda p: (-want[p], p))[:k]]


def assert_same(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [p for p, _ in got] == [p for p, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5)


def test_window_lengths_and_best_of() -> None:
    lengths = np.array([3, 5, 4])
    rows = [None, np.array([2, 3]), np.array([1, 1])]  # the last does not cover its page
    segment_lengths, counts = window_lengths(lengths, rows)
    assert segment_lengths.tolist() == [3, 2, 3, 4] and counts.tolist() == [1, 2, 1]
    scores = np.array([[1.0, 2.0, 5.0, 0.5]], np.float32)
    assert best_of(scores, counts).tolist() == [[1.0, 5.0, 0.5]]


@pytest.mark.parametrize("path", ["blocks", "blocks-numpy", "gather"])
def test_cpu_scorer_scores_the_best_window(
    rng: np.random.Generator, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path == "blocks-numpy":  # the path of a search that finds torch not loaded
        monkeypatch.setattr("latestore.index.scorers.rerank_with_numpy", lambda: True)
    pages, windows = corpus(rng)
    cache = VectorCache(DIM, "float32")
    for p, v in pages.items():
        cache.put(p, v)
    ids = np.array(sorted(pages), np.int64)
    # Tiny blocks: windowed pages straddle many block boundaries.
    blocks = (lambda p: cache.blocks(p, max_tokens=64)) if path != "gather" else None
    scorer = GatherScorer(cache.gather, cache.page_ids, blocks, windows)
    queries = [unit(rng, n, DIM) for n in (1, 7, 20)]
    for query, got in zip(queries, scorer.top_pages(queries, 10, ids, True), strict=True):
        assert_same(got, reference(want_scores(query, pages, windows), 10))
    candidates = [ids[::2], np.zeros(0, np.int64), ids[5:30]]
    for query, cands, got in zip(
        queries, candidates, scorer.score_pages(queries, candidates, True), strict=True
    ):
        want = want_scores(query, pages, windows)
        np.testing.assert_allclose(got, [want[int(p)] for p in cands], rtol=1e-5)


def index_with(
    pages: dict[int, np.ndarray], windows: dict[int, np.ndarray], kernel: bool, scoring: str
) -> LateInteractionIndex:
    index = LateInteractionIndex(
        DIM,
        "float32",
        IndexParams(ivf_min_tokens=10**9),
        str(DEVICE) if kernel else "cpu",
        kernel=kernel,
        window_scoring=scoring,
    )
    ids = sorted(pages)
    index.upsert(ids, [pages[p] for p in ids])
    index.set_windows({p: windows.get(p) for p in ids})
    return index


@pytest.mark.parametrize("kernel", [False, True])
def test_index_plans_score_the_best_window(rng: np.random.Generator, kernel: bool) -> None:
    """Exhaustive, candidates + rerank, and (with the kernel) device-exact ranking."""
    pages, windows = corpus(rng, 50)
    ids = sorted(pages)
    allowed = np.array(ids[::3], np.int64)
    queries = [unit(rng, n, DIM) for n in (3, 12)]
    for kind in [kernel]:
        index = index_with(pages, windows, kind, "best")
        assert index.ranks_on_device == kernel  # the kernel: in the interpreter on a CPU
        for flt in (None, allowed):
            for params, exhaustive in (
                (SearchParams(), True),
                (SearchParams(exhaustive_max_tokens=0, device_exact=False), False),
            ):
                got = index.search(queries, 8, params, allowed=flt, exhaustive=exhaustive)
                for query, ranking in zip(queries, got, strict=True):
                    seen = pages if flt is None else {p: pages[p] for p in flt.tolist()}
                    want = want_scores(query, seen, windows)
                    if exhaustive:
                        assert_same(ranking, reference(want, 8))
                    else:  # candidates may miss pages; what is returned is exact
                        for p, s in ranking:
                            assert s == pytest.approx(want[p], rel=1e-5)
        union = index_with(pages, windows, kind, "union")
        got = union.search(queries, 8, SearchParams(), exhaustive=True)
        for query, ranking in zip(queries, got, strict=True):
            plain = {p: float((query @ v.T).max(axis=1).sum()) for p, v in pages.items()}
            assert_same(ranking, reference(plain, 8))


def test_kernel_pairs_and_topk_under_a_tight_budget(rng: np.random.Generator) -> None:
    from latestore.index.device_rank import exact_topk, rerank_pairs
    from latestore.index.device_search import DeviceTokenSearch

    pages, windows = corpus(rng, 60)
    search = DeviceTokenSearch(DIM, DEVICE, dtype=torch.float32, budget_bytes=16 << 10)
    ids = list(pages)
    for start in range(0, len(ids), 13):
        chunk = ids[start : start + 13]
        search.add(chunk, [pages[p] for p in chunk])
    queries = [unit(rng, n, DIM) for n in (2, 9)]
    for query, got in zip(queries, exact_topk(search, queries, 12, windows=windows), strict=True):
        assert_same(got, reference(want_scores(query, pages, windows), 12))
    candidates = [np.array(ids[:17]), np.array(ids[20:50])]
    scored = rerank_pairs(search, queries, candidates, windows=windows)
    for query, cands, got in zip(queries, candidates, scored, strict=True):
        want = want_scores(query, pages, windows)
        np.testing.assert_allclose(got, [want[int(p)] for p in cands], rtol=1e-5)
