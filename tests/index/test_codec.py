"""Vector storage codecs, int8 above all: bounded error, exact MaxSim over what is stored."""

from __future__ import annotations

import numpy as np
import pytest

from latestore.index.codec import (
    as_stored,
    bytes_per_token,
    from_storage,
    quantize_int8,
    to_storage,
)
from latestore.index.maxsim import maxsim_packed, maxsim_reference
from latestore.index.vectors import VectorCache


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("dtype", ["float16", "float32", "int8"])
def test_round_trip_sizes_and_error(rng: np.random.Generator, dtype: str) -> None:
    v = unit(rng, 37, 96)
    blob = to_storage(v, dtype)
    assert len(blob) == 37 * bytes_per_token(96, dtype)
    back = from_storage(blob, 37, 96, dtype)
    tolerance = {"float32": 0, "float16": 1e-3, "int8": 0.5 / 127 * np.abs(v).max()}[dtype]
    assert np.abs(back - v).max() <= tolerance + 1e-7
    with pytest.raises(ValueError):
        from_storage(blob[:-1], 37, 96, dtype)


def test_int8_requantisation_is_stable(rng: np.random.Generator) -> None:
    v = unit(rng, 50, 64)
    once = as_stored(v, "int8")
    np.testing.assert_array_equal(as_stored(once, "int8"), once)
    codes, scales = quantize_int8(v)
    assert codes.dtype == np.int8 and np.abs(codes).max() == 127
    assert scales.shape == (50,)


def test_int8_cache_rerank_is_exact_over_stored_values(rng: np.random.Generator) -> None:
    cache = VectorCache(64, "int8")
    pages = [as_stored(unit(rng, int(rng.integers(1, 90)), 64), "int8") for _ in range(30)]
    for i, p in enumerate(pages):
        cache.put(i, p)
    query = unit(rng, 11, 64)
    tokens, lengths = cache.gather(range(30))
    np.testing.assert_allclose(
        maxsim_packed(query, tokens, lengths), maxsim_reference(query, pages), rtol=1e-5
    )
    original = [unit(np.random.default_rng(i), 5, 64) for i in range(3)]
    # Against the unquantised vectors the error stays small (what int8 costs in ranking).
    approx = maxsim_reference(query, [as_stored(o, "int8") for o in original])
    np.testing.assert_allclose(approx, maxsim_reference(query, original), atol=0.05)
