"""The derived index: flat, then IVF, re-trained as the store grows."""

from __future__ import annotations

import numpy as np

from latestore.index.late_index import RETRAIN_GROWTH, LateInteractionIndex
from latestore.index.token_index import IndexParams


def test_ivf_is_trained_then_retrained_as_pages_arrive(rng: np.random.Generator) -> None:
    index = LateInteractionIndex(16, "float16", IndexParams(ivf_min_tokens=1_000, ivf_codec="SQ8"))
    page_id = 0
    kinds, trained = [], []
    for _ in range(6):
        batch = []
        for _ in range(100):
            page_id += 1
            batch.append((page_id, rng.standard_normal((10, 16)).astype(np.float32)))
        index.upsert([p for p, _ in batch], [v for _, v in batch])
        kinds.append(index.tokens.kind)
        trained.append(index.trained_tokens)
    assert kinds == ["ivf"] * 6  # the first batch alone reaches ivf_min_tokens
    assert trained[0] == 1_000
    # Re-trained once the store outgrew the last training by RETRAIN_GROWTH.
    assert trained[-1] == RETRAIN_GROWTH * 1_000
    assert index.consistent() and index.tokens.ntotal == 6_000
