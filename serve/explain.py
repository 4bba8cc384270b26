""" "Why this page": the MaxSim argmax of every query token, with its share of the score.

MaxSim scores a page as the sum, over query tokens, of each token's best similarity
with any page token. Explaining a hit is therefore exact, not a saliency guess: for each
query token we report which page token gave its maximum, that similarity, and its share
of the total; the sum of the similarities is the page's score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from latestore.serve.positions import GridPositions, Positions, TextPositions, Unknown


@dataclass(frozen=True)
class TokenMatch:
    query_token: int
    label: str | None
    page_token: int
    similarity: float
    share: float
    span: tuple[int, int] | None
    cell: tuple[int, int] | None


@dataclass(frozen=True)
class Highlight:
    start: int
    end: int
    weight: float  # the summed share of the query tokens whose best match is here


@dataclass(frozen=True)
class Heatmap:
    rows: int
    cols: int
    values: list[list[float | None]]  # per patch: its best similarity with any query token


@dataclass(frozen=True)
class Explanation:
    page_id: int
    score: float
    page_tokens: int
    positions: str  # "text", "image" or "unknown"
    positions_note: str | None
    matches: list[TokenMatch]
    highlights: list[Highlight]
    heatmap: Heatmap | None


def explain(
    page_id: int,
    query: npt.NDArray[np.float32],
    page: npt.NDArray[np.float32],
    positions: Positions,
    labels: list[str] | None = None,
) -> Explanation:
    """Explain the MaxSim score of ``page`` (n_page x dim) for ``query`` (n_query x dim)."""
    # float32 accumulation, as the store scores: the total equals the hit's score.
    similarities = query.astype(np.float32) @ page.astype(np.float32).T
    best = similarities.argmax(axis=1)
    best_values = similarities[np.arange(len(query)), best]
    score = float(best_values.sum(dtype=np.float32))
    # Shares of a score are meaningful while the similarities are positive, which they
    # are for real matches; a zero total leaves every share 0 instead of dividing by it.
    total = float(np.abs(best_values).sum())
    matches = []
    for i, (j, value) in enumerate(zip(best.tolist(), best_values.tolist(), strict=True)):
        span = positions.spans[j] if isinstance(positions, TextPositions) else None
        cell = positions.cells[j] if isinstance(positions, GridPositions) else None
        matches.append(
            TokenMatch(
                query_token=i,
                label=labels[i] if labels is not None else None,
                page_token=int(j),
                similarity=float(value),
                share=float(value) / total if total > 0 else 0.0,
                span=span,
                cell=cell,
            )
        )
    kind, note = _kind(positions)
    return Explanation(
        page_id=page_id,
        score=score,
        page_tokens=len(page),
        positions=kind,
        positions_note=note,
        matches=matches,
        highlights=_highlights(matches),
        heatmap=_heatmap(similarities, positions) if isinstance(positions, GridPositions) else None,
    )


def _kind(positions: Positions) -> tuple[str, str | None]:
    if isinstance(positions, TextPositions):
        return "text", None
    if isinstance(positions, GridPositions):
        return "image", None
    assert isinstance(positions, Unknown)
    return "unknown", positions.reason


def _highlights(matches: list[TokenMatch]) -> list[Highlight]:
    weights: dict[tuple[int, int], float] = {}
    for match in matches:
        if match.span is not None and match.span[1] > match.span[0]:
            weights[match.span] = weights.get(match.span, 0.0) + max(match.share, 0.0)
    return [Highlight(s, e, round(w, 6)) for (s, e), w in sorted(weights.items())]


def _heatmap(similarities: npt.NDArray[np.float32], grid: GridPositions) -> Heatmap:
    values = np.full((grid.rows, grid.cols), np.nan, dtype=np.float32)
    per_token = similarities.max(axis=0)
    for token, cell in enumerate(grid.cells):
        if cell is not None:
            values[cell] = per_token[token]
    # A cell no stored token covers has no value (JSON has no NaN).
    cells = [[None if np.isnan(v) else round(float(v), 5) for v in row] for row in values.tolist()]
    return Heatmap(grid.rows, grid.cols, cells)
