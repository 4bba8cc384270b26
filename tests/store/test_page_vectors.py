"""Store.page_vectors: a page's token vectors as stored (used by `latestore serve`)."""

from __future__ import annotations

import numpy as np
import pytest

from latestore import Page, PrecomputedVectors, StorageConfig, StoreConfig
from latestore.errors import InvalidInputError, PageNotFoundError
from latestore.store import Store


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_page_vectors_are_the_stored_tokens(
    store_url: str, rng: np.random.Generator, dtype: str
) -> None:
    raw = rng.standard_normal((7, 16)).astype(np.float32)
    config = StoreConfig(storage=StorageConfig(vector_dtype=dtype))
    with Store.open(store_url, PrecomputedVectors(16), config=config) as store:
        (page_id,) = store.add_pages([Page(vectors=raw, external_id="p")])
        got = store.page_vectors(page_id)
        assert got.dtype == np.float32 and got.shape == (7, 16)
        unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
        assert np.allclose(got, unit, atol={"float32": 1e-6, "float16": 1e-3, "int8": 2e-2}[dtype])
        # What the index scores with: MaxSim over these equals the search score.
        query = unit[:3]
        (hit,) = store.search(query, k=1, exhaustive=True)
        assert np.isclose((query @ got.T).max(axis=1).sum(), hit.score, atol=1e-2)
        with pytest.raises(PageNotFoundError):
            store.page_vectors(page_id + 1)
        with pytest.raises(InvalidInputError):
            store.page_vectors("1")  # type: ignore[arg-type]
        store.delete([page_id])
        with pytest.raises(PageNotFoundError):
            store.page_vectors(page_id)
