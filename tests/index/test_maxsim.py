"""The exact MaxSim kernels against a naive float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latestore.index import maxsim
from latestore.index.maxsim import maxsim_many, maxsim_packed, maxsim_reference, pack_pages


def random_pages(rng: np.random.Generator, n: int, dim: int, max_len: int) -> list[np.ndarray]:
    pages = []
    for _ in range(n):
        v = rng.standard_normal((int(rng.integers(1, max_len + 1)), dim)).astype(np.float32)
        pages.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return pages


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_packed_equals_reference_on_mixed_lengths(rng: np.random.Generator, dtype: type) -> None:
    pages = [p.astype(dtype) for p in random_pages(rng, 150, 48, 700)]
    query = rng.standard_normal((19, 48)).astype(np.float32)
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    tokens, lengths = pack_pages(pages)
    got = maxsim_packed(query, tokens, lengths)
    want = maxsim_reference(query, pages)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_chunk_boundaries_do_not_change_scores(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = random_pages(rng, 60, 16, 50)
    query = rng.standard_normal((5, 16)).astype(np.float32)
    tokens, lengths = pack_pages(pages)
    whole = maxsim_packed(query, tokens, lengths)
    # 37-token chunks: many chunks, and no page is ever split across two
    monkeypatch.setattr(maxsim, "CPU_CHUNK_BYTES", 37 * 4 * 16)
    np.testing.assert_allclose(maxsim_packed(query, tokens, lengths), whole, rtol=1e-6)
    np.testing.assert_allclose(maxsim_many([query], tokens, lengths)[0], whole, rtol=1e-6)


@pytest.mark.parametrize(
    "page_lengths",
    [
        [3, 1, 7, 7, 2, 5, 1, 6],  # padded block: short pages repeat their last row
        [1, 1, 1, 400, 1, 1],  # one long page among short ones: segmented reduceat
        [1, 2, 1, 2],
    ],
)
def test_mixed_lengths_in_one_chunk_match_the_reference(
    rng: np.random.Generator, page_lengths: list[int]
) -> None:
    pages = []
    for n in page_lengths:
        # negative similarities everywhere would expose any padding value taken as a max
        v = -np.abs(rng.standard_normal((n, 8))).astype(np.float32)
        pages.append(v)
    query = np.abs(rng.standard_normal((3, 8))).astype(np.float32)
    tokens, lengths = pack_pages(pages)
    np.testing.assert_allclose(
        maxsim_packed(query, tokens, lengths), maxsim_reference(query, pages), rtol=1e-5
    )


def test_many_queries_equal_single_queries(rng: np.random.Generator) -> None:
    pages = random_pages(rng, 80, 24, 120)
    queries = [
        rng.standard_normal((int(rng.integers(1, 12)), 24)).astype(np.float32) for _ in range(7)
    ]
    tokens, lengths = pack_pages(pages)
    many = maxsim_many(queries, tokens, lengths)
    for row, query in zip(many, queries, strict=True):
        np.testing.assert_allclose(row, maxsim_reference(query, pages), rtol=1e-5)


def test_single_token_pages_and_empty_input() -> None:
    query = np.eye(3, dtype=np.float32)
    pages = [np.eye(3, dtype=np.float32)[i : i + 1] for i in range(3)]
    tokens, lengths = pack_pages(pages)
    assert maxsim_packed(query, tokens, lengths).tolist() == [1.0, 1.0, 1.0]
    assert maxsim_packed(query, np.zeros((0, 3), np.float32), np.zeros(0, np.int64)).shape == (0,)
    with pytest.raises(ValueError):
        maxsim_packed(query, tokens, np.array([3, 0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_path_equals_reference(rng: np.random.Generator) -> None:
    pages = [p.astype(np.float16) for p in random_pages(rng, 200, 128, 1024)]
    query = rng.standard_normal((32, 128)).astype(np.float32)
    tokens, lengths = pack_pages(pages)
    got = maxsim_packed(query, torch.from_numpy(tokens).cuda(), lengths)
    np.testing.assert_allclose(got, maxsim_reference(query, pages), rtol=1e-5)


def test_equal_length_pages_take_the_reshape_path(rng: np.random.Generator) -> None:
    pages = [rng.standard_normal((64, 32)).astype(np.float32) for _ in range(40)]
    query = rng.standard_normal((9, 32)).astype(np.float32)
    tokens, lengths = pack_pages(pages)
    np.testing.assert_allclose(
        maxsim_packed(query, tokens, lengths), maxsim_reference(query, pages), rtol=1e-5
    )
