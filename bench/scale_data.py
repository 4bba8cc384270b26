"""Synthetic clustered token vectors with planted answers, for bench.scale.

Tokens are 128-dim unit vectors drawn around ``CENTRES`` random centres; each page
takes its tokens from a few centres of its own (a "topic", as real pages repeat a few
themes), 100-500 tokens a page. A query is 32 tokens of one planted page with noise
added, so that page is the answer exhaustive MaxSim finds; the other nine of the top
ten are near-ties among pages of the same topics, which is what makes overlap@10 with
exhaustive hard at scale.

Everything derives from a seed and the page number, batch by batch, so any size is
the prefix of a larger one and nothing but the current batch is held in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

DIM = 128
CENTRES = 4096
TOPIC_CENTRES = 8
MIN_TOKENS, MAX_TOKENS = 100, 500
TOKEN_NOISE = 0.07  # per dimension: cosine to its centre about 0.75
QUERY_TOKENS = 32
QUERY_NOISE = 0.05
BATCH_PAGES = 256


def _unit(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    out: npt.NDArray[np.float32] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


@dataclass
class Corpus:
    """Pages up to ``tokens`` tokens (the last page may cross it) and planted queries."""

    tokens: int
    n_queries: int = 100
    seed: int = 7
    # Fewer centres emulate a larger corpus at the same size (more tokens per centre):
    # bench.scale_quality uses that to sweep settings for 64M tokens in minutes.
    n_centres: int = CENTRES
    centres: npt.NDArray[np.float32] = field(init=False, repr=False)
    # page number -> its query, filled as the planted pages are generated
    queries: dict[int, npt.NDArray[np.float32]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng([self.seed, 0])
        self.centres = _unit(rng.standard_normal((self.n_centres, DIM), dtype=np.float32))
        # Planted pages spread over the whole corpus (about 300 tokens a page).
        expected_pages = max(self.n_queries, self.tokens // 300)
        self.planted = set(
            np.linspace(0, expected_pages - 1, self.n_queries).astype(np.int64).tolist()
        )

    def batches(self) -> Iterator[list[npt.NDArray[np.float16]]]:
        """Lists of page matrices (float16), ``BATCH_PAGES`` at a time, in page order."""
        made, page = 0, 0
        batch_no = 0
        while made < self.tokens:
            batch_no += 1
            rng = np.random.default_rng([self.seed, batch_no])
            sizes = rng.integers(MIN_TOKENS, MAX_TOKENS + 1, BATCH_PAGES)
            topics = rng.integers(0, self.n_centres, (BATCH_PAGES, TOPIC_CENTRES))
            pick = rng.integers(0, TOPIC_CENTRES, int(sizes.sum()))
            owner = np.repeat(np.arange(BATCH_PAGES), sizes)
            rows = self.centres[topics[owner, pick]]
            rows += TOKEN_NOISE * rng.standard_normal(rows.shape, dtype=np.float32)
            vectors = _unit(rows).astype(np.float16)
            pages = np.split(vectors, np.cumsum(sizes)[:-1])
            out = []
            for matrix in pages:
                if made >= self.tokens:
                    break
                if page in self.planted:
                    self.queries[page] = self._query(matrix, rng)
                out.append(matrix)
                made += len(matrix)
                page += 1
            yield out

    def _query(
        self, page: npt.NDArray[np.float16], rng: np.random.Generator
    ) -> npt.NDArray[np.float32]:
        chosen = rng.choice(len(page), QUERY_TOKENS, replace=False)
        rows = page[chosen].astype(np.float32)
        rows += QUERY_NOISE * rng.standard_normal(rows.shape, dtype=np.float32)
        return _unit(rows)
