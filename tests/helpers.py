"""Helpers every test package shares: stores over given vectors, unit vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from latestore import (
    IndexConfig,
    PrecomputedVectors,
    SearchConfig,
    StorageConfig,
    Store,
    StoreConfig,
)

# Small thresholds so store tests exercise the trained IVF path, not only flat.
SMALL_IVF = StoreConfig(
    index=IndexConfig(ivf_min_tokens=5_000, ivf_codec="SQ8"),
    search=SearchConfig(exhaustive_max_tokens=500, n_rerank=64),
)
# Exact everywhere, no candidate index: results depend on the vectors alone.
EXACT = StoreConfig(
    storage=StorageConfig(vector_dtype="float32"),
    search=SearchConfig(exhaustive_max_tokens=0),
    index=IndexConfig(ivf_codec="none"),
)


def precomputed_store(
    target: str | Path, dim: int, config: StoreConfig | None = None, **kwargs: Any
) -> Store:
    """A store whose pages bring their own vectors (no model is loaded)."""
    return Store.open(target, PrecomputedVectors(dim=dim), config=config, **kwargs)


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> npt.NDArray[np.float32]:
    """``n`` random L2-normalised vectors, as an encoder's tokens are."""
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)
