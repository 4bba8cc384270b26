"""Fusing a MaxSim ranking with a lexical one (hybrid search).

Every candidate carries its exact MaxSim score; a lexical rank and score only when
the full-text index matched it. Three rules, each with the lexical share ``weight``:

* ``"rrf"``, reciprocal-rank fusion (Cormack et al., 2009)::

      fused = 2 (1 - weight) / (rrf_k + maxsim_rank) + 2 weight / (rrf_k + lexical_rank)

  where ``maxsim_rank`` is the page's rank among all candidates by exact MaxSim and
  the lexical term is 0 for a page the lexical ranking did not return. ``weight=0.5``
  is plain RRF. Only ranks count, so the scales of MaxSim and the BM25 scores do
  not matter.
* ``"weighted"``: MaxSim min-max normalised to [0, 1] over the candidates (a constant
  score normalises to 1), the lexical score divided by the best one (both engines'
  scores are positive, so every page the index matched stays above the ones it did
  not), then ``(1 - weight) * maxsim + weight * lexical``, the lexical part 0 when
  absent.

* ``"convex"`` (``StoreConfig``'s default): a convex combination of normalised scores (Bruch et al.,
  2023, "An Analysis of Fusion Functions for Hybrid Retrieval") whose lexical share is
  set per query by how far the lexical ranking agrees with MaxSim::

      w_q   = weight * (|top-n by MaxSim  and  top-n lexical| / n) ** 2      (n = agree_at)
      fused = (1 - w_q) * maxsim + w_q * lexical

  MaxSim min-max normalised over the candidates, the lexical score min-max normalised
  over the lexical hits among them (0 for a page the lexical ranking did not return).
  Where the two rankings share nothing in their top ``n``, the lexical ranking is
  probably answering another question than the one MaxSim answers, and the query
  ranks by MaxSim alone; the more they agree, the more the lexical scores reorder
  (squared: half the top 10 in common gives a quarter of ``weight``).
  MaxSim is the stronger ranking on every collection measured, so it keeps at least
  ``1 - weight`` of the say (default ``weight`` 0.9; see ``docs/ranking-quality.md``).

Every rule is monotone in both inputs: a page that MaxSim and the lexical ranking both
put above another stays above it. A page without text (an image-only page) never has a
lexical score, so it ranks by its MaxSim term alone. Ties go to the higher MaxSim score,
then the smaller page id.

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

FUSION_RULES = ("convex", "rrf", "weighted")
DEFAULT_RULE = "convex"
DEFAULT_AGREE_AT = 10
# The lexical share each rule uses unless told: plain RRF and an even weighted sum; for
# convex the largest share, reached where the two rankings' top 10 agree entirely
# (0.9 measured best of 0.5, 0.7, 0.9 with the squared agreement: ranking-quality.md).
DEFAULT_WEIGHTS = {"convex": 0.9, "rrf": 0.5, "weighted": 0.5}


def default_weight(rule: str) -> float:
    """The lexical share ``rule`` uses when none is given."""
    if rule not in DEFAULT_WEIGHTS:
        raise ValueError(f"fusion rule must be one of {FUSION_RULES}, got {rule!r}")
    return DEFAULT_WEIGHTS[rule]


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
    agree_at: int = DEFAULT_AGREE_AT,
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
    elif rule == "convex":
        lexical_part = _lexical_min_max(pages, lexical_score)
        share = weight * _agreement(pages, exact, lexical, agree_at) ** 2
        fused = (1 - share) * _min_max(exact) + share * lexical_part
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


def _agreement(
    pages: np.ndarray, exact: np.ndarray, lexical: Sequence[tuple[int, float]], n: int
) -> float:
    """The share of MaxSim's top ``n`` candidates that are in the lexical top ``n``."""
    if n < 1 or not lexical:
        return 0.0
    top = pages[np.lexsort((pages, -exact))[:n]]
    return len(set(top.tolist()) & {p for p, _ in lexical[:n]}) / n


def _lexical_min_max(pages: np.ndarray, lexical_score: Mapping[int, float]) -> np.ndarray:
    """Lexical scores min-max normalised over the pages that have one; 0 elsewhere."""
    known = np.array([lexical_score.get(p, np.nan) for p in pages.tolist()])
    present = ~np.isnan(known)
    out = np.zeros(len(pages))
    if present.any():
        out[present] = _min_max(known[present])
    return out


def _min_max(values: np.ndarray) -> np.ndarray:
    if not len(values):
        return values
    low, high = float(values.min()), float(values.max())
    if high - low <= 0:
        return np.ones_like(values)
    return (values - low) / (high - low)
