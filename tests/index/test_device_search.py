"""The torch candidate search (the GPU path without faiss-gpu) against exact FAISS.

It runs on the CPU here; the CUDA variant skips without a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latestore.index.device_search import DeviceTokenSearch
from latestore.index.token_index import IndexParams, TokenIndex


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def build(rng: np.random.Generator, device: str) -> tuple[DeviceTokenSearch, TokenIndex, dict]:
    pages = {p: unit(rng, int(rng.integers(1, 40)), 16) for p in range(1, 121)}
    search = DeviceTokenSearch(16, device, dtype=torch.float32)
    flat = TokenIndex(16, IndexParams(ivf_min_tokens=10**9))
    for start in range(1, 121, 30):
        ids = list(range(start, start + 30))
        search.add(ids, [pages[p] for p in ids])
        flat.add(ids, [pages[p] for p in ids])
    return search, flat, pages


def check_same(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> None:
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)
    for g_ids, w_ids, w_scores in zip(got[1], want[1], want[0], strict=True):
        clear = w_scores > w_scores[-1] + 1e-5  # above the k-th score: no tie can swap them
        assert set(w_ids[clear]) <= set(g_ids)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_matches_exact_faiss_through_adds_and_removes(
    rng: np.random.Generator, device: str
) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    search, flat, _ = build(rng, device)
    queries = unit(rng, 7, 16)
    check_same(search.search(queries, 25), flat.search(queries, 25, nprobe=1))
    gone = list(range(1, 121, 2))  # half the pages: triggers compaction
    search.remove(gone)
    flat.remove(gone)
    assert search.ntotal == flat.ntotal
    check_same(search.search(queries, 25), flat.search(queries, 25, nprobe=1))
    assert not set(search.search(queries, 400)[1].ravel()) & {
        int(i) for p in gone for i in range(p << 20, (p << 20) + 40)
    }


def test_filter_and_short_results(rng: np.random.Generator) -> None:
    search, _, pages = build(rng, "cpu")
    queries = unit(rng, 3, 16)
    allowed = np.array([5, 6, 200], dtype=np.int64)  # 200 does not exist
    scores, ids = search.search(queries, 100, allowed)
    n_allowed = len(pages[5]) + len(pages[6])
    assert ((ids[:, :n_allowed] >> 20) <= 6).all() and ((ids[:, :n_allowed] >> 20) >= 5).all()
    assert (ids[:, n_allowed:] == -1).all() and np.isneginf(scores[:, n_allowed:]).all()
    empty = DeviceTokenSearch(16, "cpu")
    s, i = empty.search(queries, 4)
    assert (i == -1).all() and np.isneginf(s).all()


def test_gather_returns_each_pages_rows_after_compaction(rng: np.random.Generator) -> None:
    search, _, pages = build(rng, "cpu")
    search.remove(list(range(1, 100)))  # most pages: compacts
    wanted = [117, 100, 120]
    rows, lengths = search.gather(wanted)
    assert lengths.tolist() == [len(pages[p]) for p in wanted]
    np.testing.assert_array_equal(rows.numpy(), np.concatenate([pages[p] for p in wanted]))
    assert search.gather([])[0].shape == (0, 16)
