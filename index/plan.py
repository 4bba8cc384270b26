"""The search plan, written once against two small protocols.

A query batch is answered in one of three ways:

* **exact on the device**: a scorer that holds every page resident (the fused GPU
  kernel) ranks all allowed pages exactly, at memory speed, when ``device_exact``;
* **exact**: when asked (``exhaustive``) or when the allowed pages hold at most
  ``exhaustive_max_tokens`` tokens, every allowed page is scored exactly;
* **approximate**: the ``k_per_token`` nearest page tokens of each query token are
  fetched from a :class:`TokenCandidates`, pages are ranked by an approximate MaxSim
  over them, and the best ``n_rerank`` are scored exactly by a :class:`PageScorer`.
  When too few pages surface (very long pages, a tight filter) the token search is
  widened twice, and then the whole universe is scored exactly, so ``k`` hits come
  back whenever ``k`` pages exist.

Every implementation (FAISS on the CPU, torch over resident device pages, the fused
Triton kernel; the shards of a ShardedStore, latestore.distributed.shard_scorer)
answers the same calls; tests/index/test_contract.py runs one contract against each
(tests/distributed/test_shard_contract.py for the shards).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from latestore.index.ranking import Ranking, SearchParams, approximate_candidates, precise, top_k

Queries = list[npt.NDArray[np.float32]]
PageIds = npt.NDArray[np.int64]


class TokenCandidates(Protocol):
    """Nearest page tokens per query token (ids encode page and token)."""

    def search_tokens(
        self,
        queries: npt.NDArray[np.float32],
        k: int,
        nprobe: int,
        allowed: PageIds | None,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """``(scores, ids)``, each ``(len(queries), k)``; id -1 where fewer exist."""
        ...


class PageScorer(Protocol):
    """Exact MaxSim of queries against the pages it holds."""

    def top_pages(
        self, queries: Queries, k: int, pages: PageIds | None, exact: bool
    ) -> list[Ranking]:
        """The ``k`` best of ``pages`` (None: of every page held) per query, best first,
        ties by smaller id."""
        ...

    def score_pages(
        self, queries: Queries, candidates: list[PageIds], exact: bool
    ) -> list[npt.NDArray[np.float32]]:
        """MaxSim of each query against its own candidate pages, in their order."""
        ...


class RankingIndex(Protocol):
    """What a store's search ranks with: the local derived index (``LateInteractionIndex``,
    ``CompactIndex``), or the shards of a sharded store (latestore.distributed)."""

    def search(
        self,
        queries: Queries,
        k: int,
        params: SearchParams,
        allowed: PageIds | None = None,
        exhaustive: bool = False,
    ) -> list[Ranking]:
        """Top ``k`` pages per query, best first, ties by smaller page id."""
        ...

    def score_pages(
        self, queries: Queries, pages: list[PageIds], params: SearchParams
    ) -> list[Ranking]:
        """Exact MaxSim of each query against its own pages, in their order; pages the
        index does not hold (deleted since they were named) are left out."""
        ...


@dataclass(frozen=True)
class Universe:
    """The pages a query may see: their ids (ascending), token total, and whether a
    filter chose them."""

    pages: PageIds
    tokens: int
    filtered: bool


class HeldPages(Protocol):
    """A page cache's bookkeeping that :func:`universe_of` reads."""

    total_tokens: int

    def __contains__(self, page_id: object) -> bool: ...

    def page_ids(self) -> PageIds: ...

    def tokens_of(self, page_ids: PageIds) -> int: ...


def held_pages(cache: HeldPages, page_ids: PageIds) -> PageIds:
    """The pages of ``page_ids`` that ``cache`` holds, in their order."""
    return np.asarray([p for p in page_ids.tolist() if p in cache], np.int64)


def universe_of(cache: HeldPages, allowed: PageIds | None) -> Universe:
    """The universe of a query over ``cache``: every page held, or those of ``allowed``."""
    if allowed is None:
        return Universe(cache.page_ids(), cache.total_tokens, filtered=False)
    held = held_pages(cache, allowed)
    return Universe(held, cache.tokens_of(held), filtered=True)


def run(
    queries: Queries,
    k: int,
    params: SearchParams,
    allowed: PageIds | None,
    universe_of: Callable[[PageIds | None], Universe],
    scorer: PageScorer,
    candidates: TokenCandidates,
    *,
    exhaustive: bool = False,
    resident_scorer: PageScorer | None = None,
) -> list[Ranking]:
    """Top ``k`` pages per query, best first (ties by smaller page id).

    ``allowed``: the pages a filter admits (None: all). ``universe_of(allowed)`` says
    which of them are held and how many tokens they have; it is only asked when the
    plan needs it. ``resident_scorer``: a scorer that holds every page on a device and
    ranks them all at memory speed; with ``device_exact`` (or ``exhaustive``) it
    answers alone.
    """
    if k <= 0 or not queries:
        return [[] for _ in queries]
    if resident_scorer is not None and (exhaustive or params.device_exact):
        return resident_scorer.top_pages(queries, k, allowed, precise(params))
    universe = universe_of(allowed)
    if len(universe.pages) == 0:
        return [[] for _ in queries]
    if exhaustive or universe.tokens <= params.exhaustive_max_tokens:
        return scorer.top_pages(queries, k, universe.pages, precise(params))
    return _approximate(queries, k, params, universe, scorer, candidates)


def _approximate(
    queries: Queries,
    k: int,
    params: SearchParams,
    universe: Universe,
    scorer: PageScorer,
    source: TokenCandidates,
) -> list[Ranking]:
    allowed = universe.pages if universe.filtered else None
    params = params.widened(universe.tokens)  # candidates grow with the corpus
    stacked = np.concatenate(queries).astype(np.float32, copy=False)
    bounds = np.cumsum([0] + [len(q) for q in queries])
    scores, ids = source.search_tokens(stacked, params.k_per_token, params.nprobe, allowed)
    wanted = min(k, len(universe.pages))
    chosen: list[PageIds] = []
    fallback: list[int] = []
    for qi, query in enumerate(queries):
        rows = slice(int(bounds[qi]), int(bounds[qi + 1]))
        pages = approximate_candidates(scores[rows], ids[rows], params.n_rerank)
        attempt, widened = 0, params.k_per_token
        while len(pages) < wanted and attempt < 2:
            widened *= 8
            more_s, more_i = source.search_tokens(query, widened, params.nprobe * 4, allowed)
            pages = approximate_candidates(more_s, more_i, max(params.n_rerank, k))
            attempt += 1
        if len(pages) < wanted:
            fallback.append(qi)
            pages = np.zeros(0, dtype=np.int64)
        chosen.append(pages)
    out: list[Ranking] = [[] for _ in queries]
    if fallback:
        lost = [queries[qi] for qi in fallback]
        exact = scorer.top_pages(lost, k, universe.pages, precise(params))
        for qi, ranking in zip(fallback, exact, strict=True):
            out[qi] = ranking
    rescored = scorer.score_pages(queries, chosen, precise(params))
    for qi, (pages, exact_scores) in enumerate(zip(chosen, rescored, strict=True)):
        if len(pages):
            keep = top_k(exact_scores, pages, k)
            out[qi] = [(int(pages[i]), float(exact_scores[i])) for i in keep]
    return out
