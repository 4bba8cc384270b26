"""The torch-free rerank (index/maxsim_numpy.py): the reference's scores, torch's to
float32 rounding, and a search that takes it imports no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latestore import Page
from latestore.index.devices import gpu_nodes_present
from latestore.index.maxsim import maxsim_blocks, maxsim_reference
from latestore.index.maxsim_numpy import maxsim_blocks_numpy
from latestore.index.vectors import VectorCache
from tests.helpers import precomputed_store, unit_vectors
from tests.index.test_maxsim_blocks import filled


@pytest.mark.parametrize("dtype", ["float16", "float32", "int8"])
@pytest.mark.parametrize("max_tokens", [1, 200, 100_000])
def test_numpy_blocks_match_the_reference_and_torch(
    tmp_path: Path, rng: np.random.Generator, dtype: str, max_tokens: int
) -> None:
    cache = filled(tmp_path, rng, dtype, on_disk=True)
    ids = cache.page_ids().tolist()
    rng.shuffle(ids)
    queries = [rng.standard_normal((n, 16)).astype(np.float32) for n in (5, 1, 12)]
    got = maxsim_blocks_numpy(queries, cache.blocks(ids, max_tokens))
    assert got.shape == (3, len(ids)) and got.dtype == np.float32
    pages = [np.asarray(cache.get(p), dtype=np.float64) for p in ids]
    for qi, query in enumerate(queries):
        np.testing.assert_allclose(got[qi], maxsim_reference(query, pages), rtol=2e-5, atol=1e-5)
    torch_scores = maxsim_blocks(queries, cache.blocks(ids, max_tokens))
    np.testing.assert_allclose(got, torch_scores, rtol=1e-6, atol=1e-5)


def test_no_blocks_give_no_columns(rng: np.random.Generator) -> None:
    query = rng.standard_normal((3, 8)).astype(np.float32)
    assert maxsim_blocks_numpy([query, query], []).shape == (2, 0)


def test_reused_scratch_is_not_read_past_the_block(rng: np.random.Generator) -> None:
    # A large float16 block, then a small one: the small one's rows come from the
    # thread's scratch buffer and must be exactly its own.
    cache = VectorCache(8, "float16")
    for page in range(40):
        cache.put(page, rng.standard_normal((50, 8)).astype(np.float32))
    query = rng.standard_normal((4, 8)).astype(np.float32)
    maxsim_blocks_numpy([query], cache.blocks(list(range(40)), 10_000))
    got = maxsim_blocks_numpy([query], cache.blocks([5], 10_000))[0]
    want = maxsim_reference(query, [np.asarray(cache.get(5), dtype=np.float64)])
    np.testing.assert_allclose(got, want, rtol=2e-5)


_SEARCH_WITHOUT_TORCH = """
import sys
import numpy as np
from latestore import Store
from latestore.torch_use import declare_one_shot_process
if sys.argv[3] == "one-shot":
    declare_one_shot_process()
with Store.open(sys.argv[1]) as store:
    query = np.load(sys.argv[2])
    hits = store.search(query, k=5)
    print(" ".join(f"{h.page_id}:{h.score:.6f}" for h in hits))
    print("torch" in sys.modules)
    store.search(query, k=5)  # the second search: a long-running process loads torch
    print("torch" in sys.modules)
    store.search(query, k=5, exhaustive=True)  # a whole-store scan loads torch's kernels
    print("torch" in sys.modules)
"""


@pytest.mark.skipif(gpu_nodes_present(), reason="a GPU machine imports torch to find it")
@pytest.mark.parametrize("process", ["one-shot", "long-running"])
def test_first_search_does_not_wait_for_torch(tmp_path: Path, process: str) -> None:
    """A process's first search ranks without importing torch, with torch's scores to
    float32 rounding. A one-off command (the CLI declares itself one) never loads it for
    a candidate search; any other process loads it at its second search, whose kernels
    are faster for every search after it."""
    rng = np.random.default_rng(7)
    db = tmp_path / "store.db"
    with precomputed_store(db, dim=16) as store:
        store.add_pages([Page(vectors=unit_vectors(rng, 6, 16)) for _ in range(40)])
        query = unit_vectors(rng, 4, 16)
        want = store.search(query, k=5)  # this process has torch: its kernels
    np.save(tmp_path / "q.npy", query)
    done = subprocess.run(
        [sys.executable, "-c", _SEARCH_WITHOUT_TORCH, str(db), str(tmp_path / "q.npy"), process],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ranked, first, second, after = done.stdout.splitlines()
    got = [item.split(":") for item in ranked.split()]
    assert [int(page) for page, _ in got] == [hit.page_id for hit in want]
    for (_, score), hit in zip(got, want, strict=True):
        assert float(score) == pytest.approx(hit.score, rel=1e-6, abs=1e-6)
    long_running = process == "long-running"
    assert (first, second, after) == ("False", str(long_running), "True")
