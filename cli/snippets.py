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
from latestore.internal import still_stored

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


def maxsim_marks(
    store: Store,
    query: npt.NDArray[np.float32],
    hit: SearchHit,
    vectors: npt.NDArray[np.float32],
) -> list[Mark] | None:
    """The page tokens that are some query token's MaxSim argmax, as text spans; None
    when the page's token positions cannot be derived. ``vectors``: the page's stored."""
    from latestore.explain import TextPositions, explain, text_positions

    try:
        positions = text_positions(store.encoder, hit.text or "", len(vectors))
    except LatestoreError:  # the model cannot load
        return None
    if not isinstance(positions, TextPositions):
        return None
    why = explain(hit.page_id, query, vectors, positions)
    return [Mark(h.start, h.end, h.weight) for h in why.highlights]


def placeable(store: Store, hit: SearchHit) -> bool:
    """Can the page's tokens be placed in its text (a text page of a model's own)?"""
    from latestore.explain import reads_page_images

    if not hit.text or store.encoder_name == "precomputed":
        return False
    try:
        # Encoded from the image: its tokens are patches, not text.
        return not (hit.has_image and reads_page_images(store.encoder))
    except LatestoreError:  # the model cannot load
        return False


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


def snippets(
    store: Store,
    query: str,
    vectors: npt.NDArray[np.float32] | None,
    hits: list[SearchHit],
    width: int = SNIPPET_CHARS,
) -> list[Text]:
    """The snippet shown for each hit: MaxSim's argmax tokens, else the query's words.

    ``vectors``: the query's (None for a lexical search). The pages whose tokens can be
    placed are read in one query.
    """
    stored: dict[int, npt.NDArray[np.float32]] = {}
    if vectors is not None:
        placed = [h.page_id for h in hits if placeable(store, h)]
        stored = still_stored(store.page_vectors_many, placed)
    out = []
    for hit in hits:
        text = hit.text or ""
        page = stored.get(hit.page_id)
        marks = (
            maxsim_marks(store, vectors, hit, page)
            if vectors is not None and page is not None
            else None
        )
        out.append(render(text, marks or word_marks(text, query), width))
    return out


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
