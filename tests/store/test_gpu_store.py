"""The store on a GPU: exact device ranking by default, batched and threaded searches.

Skipped without CUDA (CI has none); `make gpu-check` runs it on the GPU machine.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from latestore import IndexConfig, PrecomputedVectors, StorageConfig, Store, StoreConfig
from latestore.index.codec import as_stored
from latestore.index.maxsim import maxsim_reference
from latestore.store.validation import checked_vectors
from tests.store.helpers import clustered_pages, query_from

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_gpu_store_ranks_exactly_by_default(
    tmp_path: Path, rng: np.random.Generator, dtype: str
) -> None:
    pages, centres = clustered_pages(rng, 300, dim=64)
    config = StoreConfig(
        storage=StorageConfig(vector_dtype=dtype),
        index=IndexConfig(ivf_min_tokens=2_000, ivf_codec="SQ8"),
    )
    with Store.open(tmp_path / "g.db", PrecomputedVectors(dim=64), config=config) as store:
        ids = store.add_pages(pages)
        stats = store.stats()
        assert "exact MaxSim" in stats.search_plan and stats.device.startswith("cuda")
        assert stats.device_dtype == ("int8" if dtype == "int8" else "float16")
        # The store keeps L2-normalised vectors (as read back from its dtype) and
        # normalises queries: the reference must score the same values.
        stored = [
            as_stored(checked_vectors(p.vectors, 64, dtype, "page"), dtype).astype(np.float32)
            for p in pages
        ]
        queries = [
            checked_vectors(query_from(rng, centres, n), 64, "float32", "query") for n in (1, 8, 32)
        ]
        batched = store.search_many(queries, k=10, filter={"lang": "en"})
        allowed = [i for i, p in enumerate(pages) if p.metadata["lang"] == "en"]
        for query, hits in zip(queries, batched, strict=True):
            want = maxsim_reference(query, [stored[i] for i in allowed])
            order = sorted(range(len(allowed)), key=lambda j: (-want[j], ids[allowed[j]]))[:10]
            assert [h.page_id for h in hits] == [ids[allowed[j]] for j in order]
            np.testing.assert_allclose([h.score for h in hits], want[order], rtol=1e-5)
            assert [h.page_id for h in store.search(query, k=10, filter={"lang": "en"})] == [
                h.page_id for h in hits
            ]


def test_threads_search_in_parallel_with_a_writer(tmp_path: Path, rng: np.random.Generator) -> None:
    pages, centres = clustered_pages(rng, 400, dim=32)
    with Store.open(tmp_path / "t.db", PrecomputedVectors(dim=32)) as store:
        store.add_pages(pages[:300])
        queries = [query_from(rng, centres) for _ in range(40)]
        want = [[h.page_id for h in hits] for hits in store.search_many(queries, k=5)]
        errors: list[BaseException] = []

        def reader() -> None:
            try:
                for query, ids in zip(queries, want, strict=True):
                    got = [h.page_id for h in store.search(query, k=5)]
                    assert set(got) <= set(ids) | set(range(301, 10_000))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(4)]
        for t in threads:
            t.start()
        store.add_pages(pages[300:])
        for t in threads:
            t.join()
        assert not errors
        assert store.stats().pages == 400
