"""Search modes: rank by MaxSim, by the full-text index, or by both (hybrid).

``"maxsim"``
    Exact MaxSim over the index's candidates (the store's original ranking).
``"lexical"``
    The full-text index alone, ranked by BM25 (FTS5 on SQLite, in SQL on PostgreSQL; see
    :mod:`latestore.store.fulltext`); the query is never encoded.
``"hybrid"``
    The union of the top ``max(k, hybrid_depth)`` MaxSim pages and the top
    ``max(k, hybrid_depth)`` lexical hits; every one of them is scored with exact
    MaxSim, then the two rankings are fused (:mod:`latestore.index.fusion`).

In every mode the filter, and a ``phrase``, restrict the pages in SQL before
anything is ranked. A query given as vectors has no words: the lexical and hybrid
modes take its text from ``lexical_text``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, Engine
from sqlalchemy.orm import Session

from latestore.index.fusion import FusedHit, default_weight, fuse
from latestore.models import SearchHit
from latestore.store.fulltext import LexicalHit, LexicalSearch
from latestore.store.hits import fused_hits
from latestore.store.request import MAX_PHRASE_CHARS, SEARCH_MODES, SearchRequest

if TYPE_CHECKING:  # the index brings torch; lexical searches never load it
    from latestore.index.plan import RankingIndex

__all__ = ["MAX_PHRASE_CHARS", "SEARCH_MODES", "ModeSearch", "as_hits"]


@dataclass(frozen=True)
class ModeSearch:
    """One search call's mode, and the lexical side of it (the request is checked)."""

    request: SearchRequest
    lexical: LexicalSearch

    def allowed(
        self, session: Session, clause: ColumnElement[bool] | None, matching: list[int] | None
    ) -> npt.NDArray[np.int64] | None:
        """The pages MaxSim may rank: those of the filter (``matching``), narrowed to
        the ones containing the ``phrase``."""
        phrase = self.request.phrase
        if phrase is None:
            return None if matching is None else np.asarray(matching, dtype=np.int64)
        return np.asarray(self.lexical.containing(session, phrase, clause), dtype=np.int64)

    def lexical_hits(
        self, session: Session, clause: ColumnElement[bool] | None
    ) -> list[list[LexicalHit]]:
        request = self.request
        if request.mode == "maxsim":
            return [[] for _ in request.texts]
        n = request.k if request.mode == "lexical" else max(request.k, self._depth)
        return [
            self.lexical.top(session, text, n, clause, request.phrase) for text in request.texts
        ]

    @property
    def _depth(self) -> int:
        return self.request.settings.hybrid.depth

    def rank(
        self,
        index: RankingIndex | None,
        vectors: list[npt.NDArray[np.float32]],
        allowed: npt.NDArray[np.int64] | None,
        lexical: list[list[LexicalHit]],
    ) -> list[list[FusedHit]]:
        request, config = self.request, self.request.settings
        k, exhaustive = request.k, request.exhaustive
        params = config.search_params()
        if request.mode == "lexical":
            return [
                [
                    FusedHit(hit.page_id, hit.score, None, hit.score, rank, ("lexical",))
                    for rank, hit in enumerate(hits, start=1)
                ]
                for hits in lexical
            ]
        assert index is not None, "MaxSim and hybrid modes rank with the index"
        if request.mode == "maxsim":
            rankings = index.search(vectors, k, params, allowed=allowed, exhaustive=exhaustive)
            return [
                [FusedHit(page, score, score, None, None, ("maxsim",)) for page, score in ranking]
                for ranking in rankings
            ]
        depth = max(k, self._depth)
        rankings = index.search(vectors, depth, params, allowed=allowed, exhaustive=exhaustive)
        # Lexical hits MaxSim did not return are scored exactly too: fusion compares
        # every candidate on the same, exact MaxSim.
        missing = [
            np.asarray(sorted({h.page_id for h in hits} - {p for p, _ in ranking}), dtype=np.int64)
            for hits, ranking in zip(lexical, rankings, strict=True)
        ]
        extra = index.score_pages(vectors, missing, params)
        out = []
        for ranking, more, hits in zip(rankings, extra, lexical, strict=True):
            scores = dict(ranking) | dict(more)
            out.append(
                fuse(
                    scores,
                    {p for p, _ in ranking},
                    [(h.page_id, h.score) for h in hits],
                    k,
                    rule=config.hybrid.fusion,
                    weight=default_weight(config.hybrid.fusion)
                    if config.hybrid.lexical_weight is None
                    else config.hybrid.lexical_weight,
                    rrf_k=config.hybrid.rrf_k,
                )
            )
        return out


def as_hits(engine: Engine, rankings: list[list[FusedHit]]) -> list[list[SearchHit]]:
    """SearchHits with each signal's score; pages deleted since ranking are skipped."""
    return fused_hits(engine, rankings)
