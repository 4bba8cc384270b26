"""Fusing a MaxSim ranking with a lexical one (hybrid search).

Every candidate carries its exact MaxSim score; a lexical rank and score only when
the full-text index matched it. Two rules, both with the lexical share ``weight``:

* ``"rrf"``, reciprocal-rank fusion (Cormack et al., 2009)::

      fused = 2 (1 - weight) / (rrf_k + maxsim_rank) + 2 weight / (rrf_k + lexical_rank)

  where ``maxsim_rank`` is the page's rank among all candidates by exact MaxSim and
  the lexical term is 0 for a page the lexical ranking did not return. ``weight=0.5``
  is plain RRF. Only ranks count, so the scales of MaxSim, bm25() and ts_rank do
  not matter.
* ``"weighted"``: MaxSim min-max normalised to [0, 1] over the candidates (a constant
  score normalises to 1), the lexical score divided by the best one (both engines'
  scores are positive, so every page the index matched stays above the ones it did
  not), then ``(1 - weight) * maxsim + weight * lexical``, the lexical part 0 when
  absent.

A page without text (an image-only page) never has a lexical score, so it ranks by
its MaxSim term alone. Ties go to the higher MaxSim score, then the smaller page id.

Examples
--------
Page 3 is lexical rank 1 and MaxSim rank 3 (1/61 + 1/63); page 2 holds rank 2 in
both (2/62), a hair less:

>>> hits = fuse({1: 0.9, 2: 0.8, 3: 0.1}, {1, 2}, [(3, 7.5), (2, 2.0)], k=3)
>>> [(h.page_id, h.signals) for h in hits]
[(3, ('lexical',)), (2, ('maxsim', 'lexical')), (1, ('maxsim',))]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

FUSION_RULES = ("rrf", "weighted")


@dataclass(frozen=True)
class FusedHit:
    page_id: int
    score: float
    maxsim_score: float | None  # None in lexical mode: MaxSim is not asked
    lexical_score: float | None
    lexical_rank: int | None
    signals: tuple[str, ...]


def fuse(
    maxsim_scores: Mapping[int, float],
    from_maxsim: set[int],
    lexical: Sequence[tuple[int, float]],
    k: int,
    rule: str = "rrf",
    weight: float = 0.5,
    rrf_k: int = 60,
) -> list[FusedHit]:
    """The ``k`` best candidates by the fused score, best first.

    ``maxsim_scores`` holds the exact MaxSim score of every candidate; ``from_maxsim``
    the pages the MaxSim ranking returned; ``lexical`` the lexical ranking, best first,
    as ``(page_id, score)`` (a page missing from ``maxsim_scores`` is dropped: it was
    deleted after the lexical query).
    """
    if rule not in FUSION_RULES:
        raise ValueError(f"fusion rule must be one of {FUSION_RULES}, got {rule!r}")
    lexical = [(p, s) for p, s in lexical if p in maxsim_scores]
    pages = np.fromiter(maxsim_scores, dtype=np.int64, count=len(maxsim_scores))
    if not len(pages):
        return []
    exact = np.fromiter(maxsim_scores.values(), dtype=np.float64, count=len(pages))
    lexical_rank = {page: rank for rank, (page, _) in enumerate(lexical, start=1)}
    lexical_score = dict(lexical)
    if rule == "rrf":
        order = np.lexsort((pages, -exact))
        maxsim_rank = np.empty(len(pages), dtype=np.float64)
        maxsim_rank[order] = np.arange(1, len(pages) + 1)
        maxsim_part = 1.0 / (rrf_k + maxsim_rank)
        lexical_part = np.array(
            [1.0 / (rrf_k + lexical_rank[p]) if p in lexical_rank else 0.0 for p in pages.tolist()]
        )
        fused = 2 * (1 - weight) * maxsim_part + 2 * weight * lexical_part
    else:
        maxsim_part = _min_max(exact)
        known = np.array([lexical_score.get(p, np.nan) for p in pages.tolist()])
        lexical_part = np.zeros(len(pages))
        present = ~np.isnan(known)
        if present.any():
            top_score = float(known[present].max())
            lexical_part[present] = known[present] / top_score if top_score > 0 else 1.0
        fused = (1 - weight) * maxsim_part + weight * lexical_part
    best = np.lexsort((pages, -exact, -fused))[:k]
    out = []
    for i in best.tolist():
        page = int(pages[i])
        signals = ("maxsim",) * (page in from_maxsim) + ("lexical",) * (page in lexical_rank)
        out.append(
            FusedHit(
                page_id=page,
                score=float(fused[i]),
                maxsim_score=float(exact[i]),
                lexical_score=lexical_score.get(page),
                lexical_rank=lexical_rank.get(page),
                signals=signals,
            )
        )
    return out


def _min_max(values: np.ndarray) -> np.ndarray:
    if not len(values):
        return values
    low, high = float(values.min()), float(values.max())
    if high - low <= 0:
        return np.ones_like(values)
    return (values - low) / (high - low)
