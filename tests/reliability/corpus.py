"""The crash harness's deterministic corpus: batch ``b`` is the same in every process."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from latestore import IndexConfig, MaintenanceConfig, Page, SearchConfig, StorageConfig, StoreConfig

DIM = 16
PAGES_PER_BATCH = 6
# Flat candidates (no IVF) keep "same results as an index rebuilt from scratch" exact,
# exhaustive_max_tokens=0 sends every search through FAISS candidates + rerank, and a
# tiny snapshot threshold makes the writer snapshot every couple of batches, so kills
# land in snapshot writes as often as in SQL commits.
CONFIG = StoreConfig(
    storage=StorageConfig(vector_dtype="float32"),
    index=IndexConfig(ivf_codec="none"),
    search=SearchConfig(exhaustive_max_tokens=0, k_per_token=64),
    maintenance=MaintenanceConfig(snapshot_every_tokens=120, snapshot_every_fraction=0),
)


def batch(number: int) -> list[Page]:
    rng = np.random.default_rng(number)
    return [
        Page(
            vectors=rng.standard_normal((int(rng.integers(3, 14)), DIM)).astype(np.float32),
            external_id=external_id(number, j),
            metadata={"batch": number, "j": j},
        )
        for j in range(PAGES_PER_BATCH)
    ]


def external_id(number: int, j: int) -> str:
    return f"b{number}-p{j}"


def batch_of(external: str) -> int:
    return int(external[1:].split("-", 1)[0])


def queries(count: int, seed: int = 7) -> list[npt.NDArray[np.float32]]:
    """Unit-norm query tokens, as the store itself would normalise them."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        q = rng.standard_normal((5, DIM)).astype(np.float32)
        out.append(q / np.linalg.norm(q, axis=1, keepdims=True))
    return out
