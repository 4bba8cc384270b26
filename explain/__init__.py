"""Explanations and token positions: why a page matched, token by token.

Domain logic shared by the CLI's snippets and the server's explain endpoint:
:mod:`~latestore.explain.explanation` (each query token's MaxSim argmax and its share
of the score), :mod:`~latestore.explain.positions` (where a stored token sits in the
page's text or image) and :mod:`~latestore.explain.words` (query tokens grouped into
the words a person typed). Light to import: numpy and the encoders' window planner.
"""

from __future__ import annotations

if __name__ != "latestore.explain":
    raise ImportError(f"import latestore.explain, not {__name__!r}: see pyproject package-dir")

from latestore.explain.explanation import Explanation, TokenMatch, explain
from latestore.explain.positions import (
    GridPositions,
    Positions,
    TextPositions,
    Unknown,
    image_positions,
    reads_page_images,
    text_positions,
)
from latestore.explain.words import QueryWord, group_words, query_words, word_around

__all__ = [
    "Explanation",
    "GridPositions",
    "Positions",
    "QueryWord",
    "TextPositions",
    "TokenMatch",
    "Unknown",
    "explain",
    "group_words",
    "image_positions",
    "query_words",
    "reads_page_images",
    "text_positions",
    "word_around",
]
