""" "Why this page": the MaxSim argmax of every query token, with its share of the score.

MaxSim scores a page as the sum, over query tokens, of each token's best similarity
with any page token. Explaining a hit is therefore exact, not a saliency guess: for each
query token we report which page token gave its maximum, that similarity, and its share
of the total; the sum of the similarities is the page's score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from latestore.explain.positions import GridPositions, Positions, TextPositions, Unknown
from latestore.explain.words import QueryWord, word_around


@dataclass(frozen=True)
class TokenMatch:
    query_token: int
    label: str | None
    page_token: int
    similarity: float
    share: float
    span: tuple[int, int] | None
    cell: tuple[int, int] | None
    word: int | None = None  # the query word (index into Explanation.words) it belongs to
    page_word: str | None = None  # the page's whole word(s) around ``span``
    where: str = ""  # where on the page, in words


@dataclass(frozen=True)
class WordScore:
    """A query word's part of the score: the sums over its tokens."""

    text: str
    kind: str  # "word", "prompt", "special" or "expansion" (see explain/words.py)
    tokens: list[int]
    similarity: float
    share: float
    page_words: list[str]  # what it matched on a text page, best first


@dataclass(frozen=True)
class Highlight:
    start: int
    end: int
    weight: float  # the summed share of the query tokens whose best match is here


@dataclass(frozen=True)
class Heatmap:
    rows: int
    cols: int
    values: list[list[float | None]]  # per patch: its best similarity with the tokens shown
    low: float | None = None  # the scale: the smallest and largest value shown
    high: float | None = None
    word: int | None = None  # one query word's tokens only, or None for all of them
    what: str = "each patch's best similarity with any query token"


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
    words: list[WordScore] | None = None  # None when the query's tokens are not known
    # Best-window scoring: the rows [start, end) of the window that gave the score (the
    # matches come from it); None when the page scores over all its rows.
    window: tuple[int, int] | None = None


def explain(
    page_id: int,
    query: npt.NDArray[np.float32],
    page: npt.NDArray[np.float32],
    positions: Positions,
    labels: list[str] | None = None,
    *,
    words: list[QueryWord] | None = None,
    text: str | None = None,
    word: int | None = None,
    windows: Sequence[int] | None = None,
) -> Explanation:
    """Explain the MaxSim score of ``page`` (n_page x dim) for ``query`` (n_query x dim).

    ``words`` group the query tokens (explain/words.py); ``text`` is the page text the
    spans index; ``word`` picks one word for the heatmap (image pages). ``windows``:
    the page's rows per window when the store scores its best window
    (``Store.scoring_windows``); the matches are then that window's.
    """
    # float32 accumulation, as the store scores: the total equals the hit's score.
    similarities = query.astype(np.float32) @ page.astype(np.float32).T
    window = _best_window(similarities, windows)
    if window is not None:  # other windows' rows cannot be a match
        similarities = similarities.copy()
        similarities[:, : window[0]] = -np.inf
        similarities[:, window[1] :] = -np.inf
    best = similarities.argmax(axis=1)
    best_values = similarities[np.arange(len(query)), best]
    score = float(best_values.sum(dtype=np.float32))
    # Shares of a score are meaningful while the similarities are positive, which they
    # are for real matches; a zero total leaves every share 0 instead of dividing by it.
    total = float(np.abs(best_values).sum())
    word_of = {t: w for w, qw in enumerate(words or []) for t in qw.tokens}
    matches = []
    for i, (j, value) in enumerate(zip(best.tolist(), best_values.tolist(), strict=True)):
        span = positions.spans[j] if isinstance(positions, TextPositions) else None
        cell = positions.cells[j] if isinstance(positions, GridPositions) else None
        page_word = None
        if span is not None and text is not None and span[1] > span[0]:
            start, end = word_around(text, *span)
            page_word = text[start:end]
        matches.append(
            TokenMatch(
                query_token=i,
                label=labels[i] if labels is not None else None,
                page_token=int(j),
                similarity=float(value),
                share=float(value) / total if total > 0 else 0.0,
                span=span,
                cell=cell,
                word=word_of.get(i),
                page_word=page_word,
                where=_where(int(j), span, cell, page_word, positions),
            )
        )
    if word is not None and not 0 <= word < len(words or []):
        from latestore.errors import InvalidInputError

        raise InvalidInputError(f"word must be between 0 and {len(words or []) - 1}, got {word}")
    kind, note = _kind(positions)
    heatmap = None
    if isinstance(positions, GridPositions):
        if words is not None and word is not None:
            rows = list(words[word].tokens)
            heatmap = _named(_heatmap(similarities[rows], positions), word, words[word].text)
        else:
            heatmap = _heatmap(similarities, positions)
    return Explanation(
        page_id=page_id,
        score=score,
        page_tokens=len(page),
        positions=kind,
        positions_note=note,
        matches=matches,
        highlights=_highlights(matches, text),
        heatmap=heatmap,
        words=None if words is None else _word_scores(words, matches),
        window=window,
    )


def _best_window(
    similarities: npt.NDArray[np.float32], windows: Sequence[int] | None
) -> tuple[int, int] | None:
    """Rows of the window with the best MaxSim (the first on a tie), as the scorers
    pick it; None for a page of one window, or rows that do not cover the page."""
    if windows is None or len(windows) < 2 or sum(windows) != similarities.shape[1]:
        return None
    bounds = np.concatenate([[0], np.cumsum(windows)]).astype(np.int64)
    per_window = np.maximum.reduceat(similarities, bounds[:-1], axis=1).sum(
        axis=0, dtype=np.float32
    )
    w = int(per_window.argmax())
    return int(bounds[w]), int(bounds[w + 1])


def _where(
    token: int,
    span: tuple[int, int] | None,
    cell: tuple[int, int] | None,
    page_word: str | None,
    positions: Positions,
) -> str:
    if page_word is not None:
        return f"“{page_word}” in the text"
    if cell is not None and isinstance(positions, GridPositions):
        return (
            f"image patch at row {cell[0] + 1} of {positions.rows}, "
            f"column {cell[1] + 1} of {positions.cols}"
        )
    if isinstance(positions, GridPositions):
        return "prompt text, not the image"
    if isinstance(positions, TextPositions):
        return "a start or end marker of the page"
    return f"page token {token} (where on the page is unknown)"


def _word_scores(words: list[QueryWord], matches: list[TokenMatch]) -> list[WordScore]:
    out = []
    for word in words:
        own = [matches[t] for t in word.tokens]
        seen: dict[str, float] = {}
        for m in own:
            if m.page_word is not None:
                seen[m.page_word] = seen.get(m.page_word, 0.0) + m.share
        out.append(
            WordScore(
                text=word.text,
                kind=word.kind,
                tokens=list(word.tokens),
                similarity=float(sum(m.similarity for m in own)),
                share=float(sum(m.share for m in own)),
                page_words=sorted(seen, key=lambda w: -seen[w]),
            )
        )
    return out


def _kind(positions: Positions) -> tuple[str, str | None]:
    if isinstance(positions, TextPositions):
        return "text", None
    if isinstance(positions, GridPositions):
        return "image", None
    assert isinstance(positions, Unknown)
    return "unknown", positions.reason


def _highlights(matches: list[TokenMatch], text: str | None) -> list[Highlight]:
    """Matched spans, widened to whole words when the text is known; a word two tokens
    matched is one highlight with their summed share."""
    weights: dict[tuple[int, int], float] = {}
    for match in matches:
        if match.span is not None and match.span[1] > match.span[0]:
            span = word_around(text, *match.span) if text is not None else match.span
            weights[span] = weights.get(span, 0.0) + max(match.share, 0.0)
    return [Highlight(s, e, round(w, 6)) for (s, e), w in sorted(weights.items())]


def _heatmap(similarities: npt.NDArray[np.float32], grid: GridPositions) -> Heatmap:
    values = np.full((grid.rows, grid.cols), np.nan, dtype=np.float32)
    per_token = similarities.max(axis=0)
    for token, cell in enumerate(grid.cells):
        if cell is not None:
            values[cell] = per_token[token]
    # A cell no stored token covers has no value (JSON has no NaN).
    cells = [[None if np.isnan(v) else round(float(v), 5) for v in row] for row in values.tolist()]
    shown = values[~np.isnan(values)]
    low, high = (float(shown.min()), float(shown.max())) if shown.size else (None, None)
    return Heatmap(grid.rows, grid.cols, cells, low=low, high=high)


def _named(heatmap: Heatmap, word: int, text: str) -> Heatmap:
    what = f"each patch's best similarity with the query word “{text}”"
    return Heatmap(
        heatmap.rows, heatmap.cols, heatmap.values, heatmap.low, heatmap.high, word, what
    )
