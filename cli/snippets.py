"""The search table's text column: the part of each page that earned its score.

A page's first characters say little (on PDF pages, every hit of a document shows the
same running header). MaxSim says exactly which page token gave each query token its
best match, so the snippet is the stretch of text holding the heaviest of those tokens,
with them in bold. Where token positions are unknown (image pages, caller-given
vectors) or the hit came from the full-text index alone, the query's words mark the
stretch instead; failing both, the page's start is shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from rich.text import Text

from latestore.errors import LatestoreError

if TYPE_CHECKING:
    from latestore import SearchHit, Store

SNIPPET_CHARS = 160
_WORD = re.compile(r"\w{3,}")


@dataclass(frozen=True)
class Mark:
    """Characters ``start:end`` of the page text, and how much of the score they carry."""

    start: int
    end: int
    weight: float


def maxsim_marks(store: Store, query: npt.NDArray[np.float32], hit: SearchHit) -> list[Mark] | None:
    """The page tokens that are some query token's MaxSim argmax, as text spans; None
    when the page's token positions cannot be derived."""
    from latestore.serve.explain import explain
    from latestore.serve.positions import TextPositions, reads_page_images, text_positions

    if not hit.text or store.encoder_name == "precomputed":
        return None
    try:
        encoder = store.encoder
        if hit.has_image and reads_page_images(encoder):
            return None  # encoded from the image: its tokens are patches, not text
        vectors = store.page_vectors(hit.page_id)
        positions = text_positions(encoder, hit.text, len(vectors))
    except LatestoreError:  # deleted since it was ranked, or the model cannot load
        return None
    if not isinstance(positions, TextPositions):
        return None
    why = explain(hit.page_id, query, vectors, positions)
    return [Mark(h.start, h.end, h.weight) for h in why.highlights]


def word_marks(text: str, query: str) -> list[Mark]:
    """Every occurrence of a query word (three letters or more, any case) in ``text``."""
    words = {w.casefold() for w in _WORD.findall(query)}
    return [
        Mark(m.start(), m.end(), 1.0) for m in _WORD.finditer(text) if m.group().casefold() in words
    ]


def best_window(marks: list[Mark], length: int, width: int = SNIPPET_CHARS) -> tuple[int, int]:
    """The ``width``-character window of ``0:length`` that holds the most mark weight
    (ties: the earliest), opening a little before its first mark."""
    if not marks or length <= width:
        return 0, min(length, width)
    lead = width // 4
    best, best_start = -1.0, 0
    for mark in marks:
        start = max(0, min(mark.start - lead, length - width))
        held = sum(m.weight for m in marks if m.start >= start and m.end <= start + width)
        if held > best:
            best, best_start = held, start
    return best_start, best_start + width


def render(text: str, marks: list[Mark], width: int = SNIPPET_CHARS) -> Text:
    """The best window of ``text`` with its marks in bold, whitespace collapsed."""
    start, end = _word_bounds(text, *best_window(marks, len(text), width))
    inside = sorted((m for m in marks if m.start >= start and m.end <= end), key=lambda m: m.start)
    out = Text("…" if start > 0 else "")
    cursor = start
    for mark in inside:
        if mark.start < cursor:  # overlapping spans: the earlier one already shows it
            continue
        out.append(_squeeze(text[cursor : mark.start]))
        out.append(_squeeze(text[mark.start : mark.end]), style="bold")
        cursor = mark.end
    out.append(_squeeze(text[cursor:end]))
    if end < len(text):
        out.append("…")
    return out


def snippet(
    store: Store,
    query: str,
    vectors: npt.NDArray[np.float32] | None,
    hit: SearchHit,
    width: int = SNIPPET_CHARS,
) -> Text:
    """The snippet shown for ``hit``: MaxSim's argmax tokens, else the query's words."""
    text = hit.text or ""
    marks = maxsim_marks(store, vectors, hit) if vectors is not None else None
    if not marks:
        marks = word_marks(text, query)
    return render(text, marks, width)


def _word_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``start:end`` to whole words, when a word boundary is near."""
    if start > 0 and not text[start - 1].isspace():
        gap = text.find(" ", start, start + 20)
        start = gap + 1 if gap >= 0 else start
    if end < len(text) and not text[end].isspace():
        gap = text.rfind(" ", max(start, end - 20), end)
        end = gap if gap > start else end
    return start, end


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text)
