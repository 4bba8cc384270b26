"""Synthetic late-interaction data with structure (clustered tokens), for store tests."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from latestore import Page


def clustered_pages(
    rng: np.random.Generator,
    n_pages: int,
    dim: int = 32,
    n_topics: int = 60,
    min_tokens: int = 4,
    max_tokens: int = 40,
    **page_fields: object,
) -> tuple[list[Page], npt.NDArray[np.float32]]:
    """Pages whose tokens scatter around a few topic centres (like real text tokens)."""
    centres = rng.standard_normal((n_topics, dim)).astype(np.float32)
    pages = []
    for i in range(n_pages):
        n = int(rng.integers(min_tokens, max_tokens + 1))
        # A page is about a few topics, as a real page is; its tokens scatter around them.
        page_topics = rng.choice(n_topics, size=3, replace=False)
        topics = page_topics[rng.integers(0, 3, size=n)]
        vectors = centres[topics] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
        pages.append(
            Page(
                vectors=vectors,
                external_id=f"doc-{i}",
                document_id=f"book-{i % 7}",
                page_number=i % 13,
                metadata={"year": 2000 + i % 25, "lang": ["en", "de", "fr"][i % 3], "i": i},
                **page_fields,  # type: ignore[arg-type]
            )
        )
    return pages, centres


def query_from(
    rng: np.random.Generator, centres: npt.NDArray[np.float32], n: int = 8
) -> npt.NDArray[np.float32]:
    focus = rng.choice(len(centres), size=3, replace=False)
    topics = focus[rng.integers(0, 3, size=n)]
    return (centres[topics] + 0.6 * rng.standard_normal((n, centres.shape[1]))).astype(np.float32)
