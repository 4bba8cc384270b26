"""Search modes: rank by MaxSim, by the full-text index, or by both (hybrid).

``"maxsim"``
    Exact MaxSim over the index's candidates (the store's original ranking).
``"lexical"``
    The full-text index alone: bm25() on SQLite, ts_rank on PostgreSQL (see
    :mod:`latestore.store.fulltext`); the query is never encoded.
``"hybrid"``
    The union of the top ``max(k, hybrid_depth)`` MaxSim pages and the top
    ``max(k, hybrid_depth)`` lexical hits; every one of them is scored with exact
    MaxSim, then the two rankings are fused (:mod:`latestore.index.fusion`).

In every mode the filter, and an ``exact`` phrase, restrict the pages in SQL before
anything is ranked. A query given as vectors has no words: the lexical and hybrid
modes take its text from ``lexical_text``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, Engine
from sqlalchemy.orm import Session

from latestore.errors import InvalidInputError
from latestore.index.fusion import FusedHit, default_weight, fuse
from latestore.index.ranking import SearchParams
from latestore.models import SearchHit, StoreConfig
from latestore.store.fulltext import LexicalHit, LexicalSearch
from latestore.store.hits import hydrate

if TYPE_CHECKING:  # the index brings torch; lexical searches never load it
    from latestore.index.late_index import LateInteractionIndex

SEARCH_MODES = ("maxsim", "hybrid", "lexical")
MAX_EXACT_CHARS = 2_000


@dataclass
class ModeSearch:
    """One search call's mode, and the lexical side of it, validated up front."""

    mode: str
    texts: list[str]  # the lexical text of each query ("" for maxsim mode)
    exact: str | None
    config: StoreConfig
    lexical: LexicalSearch

    @classmethod
    def plan(
        cls,
        mode: str | None,
        queries: Sequence[Any],
        exact: str | None,
        lexical_text: Sequence[str | None] | None,
        config: StoreConfig,
        lexical: LexicalSearch,
    ) -> ModeSearch:
        chosen = config.search_mode if mode is None else mode
        if chosen not in SEARCH_MODES:
            raise InvalidInputError(f"mode must be one of {list(SEARCH_MODES)}, got {chosen!r:.80}")
        if exact is not None and (
            not isinstance(exact, str) or not exact.strip() or len(exact) > MAX_EXACT_CHARS
        ):
            raise InvalidInputError(
                f"exact must be a phrase of 1 to {MAX_EXACT_CHARS} characters, got {exact!r:.80}"
            )
        if lexical_text is not None and not isinstance(lexical_text, list | tuple):
            raise InvalidInputError(
                f"lexical_text is text, or a list of texts for a list of queries; "
                f"got {lexical_text!r:.80}"
            )
        if lexical_text is not None and len(lexical_text) != len(queries):
            raise InvalidInputError(
                f"lexical_text has {len(lexical_text)} entries for {len(queries)} queries"
            )
        texts = []
        for i, query in enumerate(queries):
            given = lexical_text[i] if lexical_text is not None else None
            if given is not None and not isinstance(given, str):
                raise InvalidInputError(f"lexical_text entries are text, got {given!r:.80}")
            words = given if given is not None else query if isinstance(query, str) else None
            if words is None and chosen != "maxsim":
                raise InvalidInputError(
                    f"mode={chosen!r} needs the words of query {i}: it is given as vectors, "
                    "so pass lexical_text"
                )
            texts.append(words or "")
        return cls(chosen, texts, exact, config, lexical)

    @property
    def needs_vectors(self) -> bool:
        return self.mode != "lexical"

    @property
    def reads_sql(self) -> bool:
        """Does ranking need SQL before the index (a phrase, or lexical hits)?"""
        return self.exact is not None or self.mode != "maxsim"

    @property
    def depth(self) -> int:
        return self.config.hybrid_depth

    def allowed(
        self, session: Session, clause: ColumnElement[bool] | None, matching: list[int] | None
    ) -> npt.NDArray[np.int64] | None:
        """The pages MaxSim may rank: those of the filter (``matching``), narrowed to
        the ones containing the ``exact`` phrase."""
        if self.exact is None:
            return None if matching is None else np.asarray(matching, dtype=np.int64)
        return np.asarray(self.lexical.containing(session, self.exact, clause), dtype=np.int64)

    def lexical_hits(
        self, session: Session, k: int, clause: ColumnElement[bool] | None
    ) -> list[list[LexicalHit]]:
        if self.mode == "maxsim":
            return [[] for _ in self.texts]
        n = k if self.mode == "lexical" else max(k, self.depth)
        return [self.lexical.top(session, text, n, clause, self.exact) for text in self.texts]

    def rank(
        self,
        index: LateInteractionIndex | None,
        vectors: list[npt.NDArray[np.float32]],
        k: int,
        params: SearchParams,
        allowed: npt.NDArray[np.int64] | None,
        exhaustive: bool,
        lexical: list[list[LexicalHit]],
    ) -> list[list[FusedHit]]:
        if self.mode == "lexical":
            return [
                [
                    FusedHit(hit.page_id, hit.score, None, hit.score, rank, ("lexical",))
                    for rank, hit in enumerate(hits, start=1)
                ]
                for hits in lexical
            ]
        assert index is not None, "MaxSim and hybrid modes rank with the index"
        if self.mode == "maxsim":
            rankings = index.search(vectors, k, params, allowed=allowed, exhaustive=exhaustive)
            return [
                [FusedHit(page, score, score, None, None, ("maxsim",)) for page, score in ranking]
                for ranking in rankings
            ]
        depth = max(k, self.depth)
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
                    rule=self.config.fusion,
                    weight=default_weight(self.config.fusion)
                    if self.config.lexical_weight is None
                    else self.config.lexical_weight,
                    rrf_k=self.config.rrf_k,
                )
            )
        return out


def as_hits(engine: Engine, rankings: list[list[FusedHit]]) -> list[list[SearchHit]]:
    """SearchHits with each signal's score; pages deleted since ranking are skipped."""
    return hydrate(
        engine,
        [[(f.page_id, f.score) for f in ranking] for ranking in rankings],
        [
            [
                {
                    "signals": f.signals,
                    "maxsim_score": f.maxsim_score,
                    "lexical_score": f.lexical_score,
                    "lexical_rank": f.lexical_rank,
                }
                for f in ranking
            ]
            for ranking in rankings
        ],
    )
