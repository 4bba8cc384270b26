"""CUDA paths: device-resident vectors, GPU MaxSim and FAISS GPU. Skipped without CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latestore.index.late_index import LateInteractionIndex
from latestore.index.maxsim import maxsim_many, maxsim_reference, pack_pages
from latestore.index.ranking import SearchParams
from latestore.index.token_index import IndexParams

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_many_queries_on_cuda_equal_reference(rng: np.random.Generator) -> None:
    pages = [unit(rng, int(rng.integers(1, 300)), 64).astype(np.float16) for _ in range(100)]
    queries = [unit(rng, int(rng.integers(1, 20)), 64) for _ in range(4)]
    tokens, lengths = pack_pages(pages)
    got = maxsim_many(queries, torch.from_numpy(tokens).cuda(), lengths)
    for row, query in zip(got, queries, strict=True):
        np.testing.assert_allclose(row, maxsim_reference(query, pages), rtol=1e-5)


def test_cuda_index_keeps_vectors_resident_and_matches_cpu(rng: np.random.Generator) -> None:
    params = IndexParams(ivf_min_tokens=2_000, ivf_codec="SQ8")
    pages = [unit(rng, int(rng.integers(5, 40)), 32) for _ in range(300)]
    ids = list(range(1, 301))
    results = {}
    for device in ("cpu", "cuda"):
        index = LateInteractionIndex(32, "float16", params, device=device)
        index.upsert(ids, pages)
        if device == "cuda":  # every page resident once, in the packed device matrix
            assert index.device_tokens is not None and index.device_tokens.rows.is_cuda
            assert all(p in index.device_tokens for p in ids)
            assert index.device_tokens.ntotal == index.vectors.total_tokens
        queries = [unit(np.random.default_rng(7), 8, 32)]
        results[device] = index.search(
            queries, 10, SearchParams(exhaustive_max_tokens=0), exhaustive=True
        )
    assert [p for p, _ in results["cpu"][0]] == [p for p, _ in results["cuda"][0]]
    np.testing.assert_allclose(
        [s for _, s in results["cpu"][0]], [s for _, s in results["cuda"][0]], rtol=1e-5
    )
