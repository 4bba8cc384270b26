"""The derived index: flat, then IVF trained once; the same index however pages arrive."""

from __future__ import annotations

import numpy as np

from latestore.index.late_index import LateInteractionIndex
from latestore.index.token_index import MAX_AUTO_NLIST, IndexParams, auto_nlist

PARAMS = IndexParams(ivf_min_tokens=1_000, ivf_codec="SQ8")


def _pages(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    return [rng.standard_normal((10, 16)).astype(np.float32) for _ in range(n)]


def test_ivf_is_trained_once_when_the_store_reaches_ivf_min_tokens(
    rng: np.random.Generator,
) -> None:
    index = LateInteractionIndex(16, "float16", PARAMS)
    pages = _pages(rng, 600)
    kinds, trained, quantizers = [], [], []
    for start in range(0, 600, 50):
        index.upsert(list(range(start, start + 50)), pages[start : start + 50])
        kinds.append(index.tokens.kind)
        trained.append(index.trained_tokens)
        quantizers.append(id(index.tokens.index))
    # Flat below ivf_min_tokens; IVF from the write that reaches it (the 20th page).
    assert kinds[:1] == ["flat"] and kinds[1:] == ["ivf"] * 11
    # Trained at 1,000 tokens and never again: no write pays for a retrain as it grows.
    assert trained[1:] == [1_000] * 11
    assert len(set(quantizers[1:])) == 1
    assert index.consistent() and index.tokens.ntotal == 6_000


def test_nlist_does_not_depend_on_how_the_pages_were_written(
    rng: np.random.Generator,
) -> None:
    pages = _pages(rng, 600)
    streamed = LateInteractionIndex(16, "float16", PARAMS)
    for start in range(0, 600, 7):
        ids = list(range(start, min(600, start + 7)))
        streamed.upsert(ids, pages[ids[0] : ids[-1] + 1])
    at_once = LateInteractionIndex(16, "float16", PARAMS)
    at_once.upsert(list(range(600)), pages)
    assert streamed.tokens.describe() == at_once.tokens.describe()
    assert streamed.tokens.describe()["nlist"] == auto_nlist(PARAMS) == 32
    # A rebuild (as at an open without a snapshot) keeps that list count.
    streamed.rebuild()
    assert streamed.tokens.describe()["nlist"] == 32


def test_auto_nlist_follows_the_settings_only() -> None:
    assert auto_nlist(IndexParams()) == MAX_AUTO_NLIST  # 100,000 tokens train 4,096 lists
    assert auto_nlist(IndexParams(ivf_min_tokens=5_000)) == 128
    assert auto_nlist(IndexParams(ivf_nlist=100)) == 100
    assert auto_nlist(IndexParams(ivf_min_tokens=1)) == 1


def test_a_write_that_crosses_the_threshold_adds_its_pages_once(
    rng: np.random.Generator,
) -> None:
    index = LateInteractionIndex(16, "float16", PARAMS)
    index.upsert(list(range(90)), _pages(rng, 90))
    assert index.tokens.kind == "flat"
    index.upsert(list(range(90, 300)), _pages(rng, 210))
    assert index.tokens.kind == "ivf" and index.tokens.ntotal == 3_000
    assert index.consistent()
    # Replacing and removing pages keeps the trained IVF and its page map exact.
    index.upsert([5, 6], _pages(rng, 2))
    index.remove([7])
    assert index.tokens.kind == "ivf" and index.trained_tokens == 3_000
    assert index.consistent() and index.tokens.ntotal == 2_990


def test_short_lists_are_probed_in_proportion(rng: np.random.Generator) -> None:
    index = LateInteractionIndex(16, "float16", PARAMS)
    index.upsert(list(range(600)), _pages(rng, 600))  # 6,000 tokens in 32 lists
    # ~190 tokens a list: probe enough lists to scan what 16 lists of 1,024 would hold.
    assert index.tokens.probes(1) == 6
    assert index.tokens.probes(16) == 32  # at most every list
    long_lists = LateInteractionIndex(16, "float16", IndexParams(ivf_min_tokens=1_000, ivf_nlist=4))
    long_lists.upsert(list(range(600)), _pages(rng, 600))  # 1,500 tokens a list
    assert long_lists.tokens.probes(3) == 3 and long_lists.tokens.probes(16) == 4
