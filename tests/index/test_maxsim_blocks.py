"""Scoring in place: pages read block by block where they lie, exact against float64."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latestore.index.maxsim import maxsim_blocks, maxsim_reference
from latestore.index.vectors import VectorCache


def filled(tmp_path: Path, rng: np.random.Generator, dtype: str, on_disk: bool) -> VectorCache:
    cache = VectorCache(16, dtype, on_disk=on_disk, directory=tmp_path)
    for page in range(120):
        n = int(rng.integers(1, 150))
        cache.put(page, rng.standard_normal((n, 16)).astype(np.float32))
    for page in range(0, 120, 7):  # holes between runs of adjacent pages
        cache.discard(page)
    cache.put(3, rng.standard_normal((9, 16)).astype(np.float32))  # moved to the end
    return cache


@pytest.mark.parametrize("dtype", ["float16", "float32", "int8"])
@pytest.mark.parametrize("on_disk", [True, False])
@pytest.mark.parametrize("max_tokens", [1, 200, 100_000])
def test_blocks_score_like_the_reference(
    tmp_path: Path, rng: np.random.Generator, dtype: str, on_disk: bool, max_tokens: int
) -> None:
    cache = filled(tmp_path, rng, dtype, on_disk)
    ids = cache.page_ids().tolist()
    rng.shuffle(ids)
    ids = sorted(ids[:50]) + ids[50:]  # a sorted run (adjacent in storage) then any order
    queries = [rng.standard_normal((n, 16)).astype(np.float32) for n in (5, 1, 12)]
    got = maxsim_blocks(queries, cache.blocks(ids, max_tokens))
    assert got.shape == (3, len(ids)) and got.dtype == np.float32
    pages = [np.asarray(cache.get(p), dtype=np.float64) for p in ids]
    for qi, query in enumerate(queries):
        np.testing.assert_allclose(got[qi], maxsim_reference(query, pages), rtol=2e-5, atol=1e-5)


def test_adjacent_pages_come_as_one_view_of_the_arena(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    cache = VectorCache(16, "float16", on_disk=True, directory=tmp_path)
    for page in range(30):
        cache.put(page, rng.standard_normal((20, 16)).astype(np.float32))
    blocks = list(cache.blocks(list(range(30)), max_tokens=10_000))
    assert len(blocks) == 1 and len(blocks[0].parts) == 1  # one run: no copy
    (part,) = blocks[0].parts
    assert part.shape == (600, 16)
    assert np.shares_memory(part, cache.get(0)) and np.shares_memory(part, cache.get(29))
    split = list(cache.blocks(list(range(30)), max_tokens=100))
    assert [len(b.lengths) for b in split] == [5] * 6  # whole pages per block
    assert all(len(b.parts) == 1 for b in split)


def test_long_pages_reduce_page_by_page_exactly(rng: np.random.Generator) -> None:
    cache = VectorCache(8, "float32")
    lengths = [100, 300, 70, 500, 64, 65]
    for page, n in enumerate(lengths):
        # negative similarities everywhere would expose any padding taken as a max
        cache.put(page, -np.abs(rng.standard_normal((n, 8))).astype(np.float32))
    query = np.abs(rng.standard_normal((4, 8))).astype(np.float32)
    ids = list(range(len(lengths)))
    got = maxsim_blocks([query], cache.blocks(ids, max_tokens=10_000))[0]
    want = maxsim_reference(query, [cache.get(p) for p in ids])
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_int8_pages_come_as_packed_runs_scored_in_place(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """int8 pages in the arena are not dequantised page by page: a run of them is one
    view of the packed rows (codes then scale), dequantised into the scorer's block."""
    cache = VectorCache(16, "int8", on_disk=True, directory=tmp_path)
    for page in range(30):
        cache.put(page, rng.standard_normal((20, 16)).astype(np.float32))
    (block,) = cache.blocks(list(range(30)), max_tokens=10_000)
    (part,) = block.parts
    assert part.dtype == np.uint8 and part.shape == (600, 16 + 4)
    codes, _ = cache.codes(0)
    assert np.shares_memory(part, codes)
    query = rng.standard_normal((3, 16)).astype(np.float32)
    got = maxsim_blocks([query], [block])[0]
    want = maxsim_reference(query, [np.asarray(cache.get(p), np.float64) for p in range(30)])
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-5)
