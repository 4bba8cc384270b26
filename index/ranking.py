"""What a search asks for and how candidates become a ranking (no index state here)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from latestore.index.token_ids import TOKEN_BITS

# Device temporaries of one search (similarity blocks, top-k buffers), whatever its
# number of queries, query tokens or pages.
DEFAULT_BUDGET_BYTES = 512 << 20

# The most tokens one query token may fetch after widening (FAISS GPU stops at 2048;
# the CPU index takes more).
MAX_WIDE_K_PER_TOKEN = 8192
# n_rerank grows with (tokens / widen_above_tokens) ** RERANK_GROWTH (see widened).
RERANK_GROWTH = 0.4

Ranking = list[tuple[int, float]]


@dataclass(frozen=True)
class SearchParams:
    """Query-time knobs of the approximate pipeline (exact rerank is always exact).

    ``k_per_token`` nearest page tokens are fetched per query token; pages found that
    way are ranked by an approximate MaxSim and the best ``n_rerank`` are scored
    exactly. When the pages a query may see hold at most ``exhaustive_max_tokens``
    tokens, every one of them is scored exactly instead. ``device_exact``: where the
    pages are resident on a GPU with the fused kernel, score every allowed page
    exactly (at memory speed) instead of going through candidates.

    ``k_per_token`` and ``n_rerank`` are the values for up to ``widen_above_tokens``
    tokens; past it they grow with the tokens a query may see (:meth:`widened`; 0
    keeps them fixed).
    """

    k_per_token: int = 128
    nprobe: int = 16
    n_rerank: int = 256
    exhaustive_max_tokens: int = 60_000
    device_exact: bool = True
    device_precision: str = "exact"  # "fast": float16 queries in the GPU kernel
    widen_above_tokens: int = 1_000_000

    def widened(self, tokens: int) -> SearchParams:
        """These settings for a search over ``tokens`` tokens.

        With ``k_per_token`` fixed, the nearest tokens a query token fetches cover a
        shrinking neighbourhood as the corpus grows denser: at 16M synthetic tokens the
        defaults found only 0.59 of exhaustive MaxSim's top ten. In bench.scale_quality's
        sweeps, fetching sqrt(growth) times as many tokens (4x at 16M, 8x at 64M) held
        the candidates; the rerank must widen too. A real 64M-token build gave overlap@10
        0.905 with growth**0.25 times as many pages (724), 0.985 with twice that, so the
        rerank grows with growth**0.4 (3x at 16M, 5.3x at 64M). Both grow far slower
        than the exhaustive scan, which is linear in tokens.
        """
        if self.widen_above_tokens <= 0 or tokens <= self.widen_above_tokens:
            return self
        growth = tokens / self.widen_above_tokens
        return replace(
            self,
            k_per_token=min(MAX_WIDE_K_PER_TOKEN, math.ceil(self.k_per_token * growth**0.5)),
            n_rerank=math.ceil(self.n_rerank * growth**RERANK_GROWTH),
        )


def precise(params: SearchParams) -> bool:
    return params.device_precision != "fast"


def top_k(
    scores: npt.NDArray[np.float32], pages: npt.NDArray[np.int64], k: int
) -> npt.NDArray[np.intp]:
    """Indices of the ``k`` best scores, best first, ties by smaller page id."""
    order: npt.NDArray[np.intp] = np.lexsort((pages, -scores.astype(np.float64)))
    return order[:k]


def approximate_candidates(
    scores: npt.NDArray[np.float32], ids: npt.NDArray[np.int64], n_rerank: int
) -> npt.NDArray[np.int64]:
    """Pages ranked by MaxSim over retrieved tokens only.

    A query token that retrieved nothing from a page is credited with the lowest score
    it retrieved anywhere (an upper bound of what that page can hold among the tokens
    the index saw), so pages matching many query tokens rank above pages matching one.
    """
    valid = ids >= 0
    if not valid.any():
        return np.zeros(0, dtype=np.int64)
    n_query_tokens = ids.shape[0]
    floor = np.where(valid, scores, np.inf).min(axis=1)
    floor = np.where(np.isfinite(floor), floor, 0.0).astype(np.float32)
    token_rows = np.broadcast_to(np.arange(n_query_tokens)[:, None], ids.shape)[valid]
    pages = ids[valid] >> TOKEN_BITS
    unique, inverse = np.unique(pages, return_inverse=True)
    table = np.tile(floor, (len(unique), 1))
    np.maximum.at(table, (inverse, token_rows), scores[valid])
    approx = table.sum(axis=1)
    if len(unique) > n_rerank:
        keep = np.argpartition(-approx, n_rerank - 1)[:n_rerank]
        unique = unique[keep]
    candidates: npt.NDArray[np.int64] = unique
    return candidates
