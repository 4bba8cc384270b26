"""What every writer shares about encoded pages: their vectors with what the encoder
cut, whose vectors they are, and which stored pages an encoder did not make.

The everyday write path (page_writer, page_encoding) and the re-encode job both use
these; neither owns them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from latestore.encoders import Encoder, PageContent
from latestore.encoders.windows import as_windowed
from latestore.store.schema import PageRow
from latestore.store.validation import checked_vectors

__all__ = [
    "PRECOMPUTED",
    "PageEncoding",
    "ProgressCallback",
    "encode_counted",
    "not_encoded_by",
    "pages_not_encoded_by",
]

# ``encoded_with`` of a page whose vectors the caller gave: no encoder re-makes them.
PRECOMPUTED = "precomputed"
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class PageEncoding:
    """A page's vectors, what its encoder cut (None: unknown) and whose vectors they are."""

    vectors: npt.NDArray[np.floating]
    text_tokens: int | None
    tokens_dropped: int | None
    encoded_with: str
    # Rows per window (EncodedPage.window_rows): None for one window, or unknown.
    window_rows: tuple[int, ...] | None = None

    def checked(self, dim: int, dtype: str, label: str) -> PageEncoding:
        return replace(self, vectors=checked_vectors(self.vectors, dim, dtype, label))


def encode_counted(encoder: Encoder, contents: Sequence[PageContent]) -> list[PageEncoding]:
    """Encode pages, with cut counts where the encoder reads in windows."""
    windowed = as_windowed(encoder)
    if windowed is not None:
        return [
            PageEncoding(
                p.vectors, p.text_tokens, p.tokens_dropped, encoder.fingerprint, p.window_rows
            )
            for p in windowed.encode_pages_with_counts(contents)
        ]
    return [
        PageEncoding(v, None, None, encoder.fingerprint) for v in encoder.encode_pages(contents)
    ]


def not_encoded_by(fingerprint: str) -> Any:
    """The SQL condition of a page ``fingerprint``'s encoder did not make (caller-given
    vectors excluded: nothing re-makes them)."""
    return or_(
        PageRow.encoded_with.is_(None),
        (PageRow.encoded_with != fingerprint) & (PageRow.encoded_with != PRECOMPUTED),
    )


def pages_not_encoded_by(session: Session, fingerprint: str) -> int:
    """Pages whose vectors ``fingerprint``'s encoder did not make (caller-given kept)."""
    pending = not_encoded_by(fingerprint)
    return int(session.execute(select(func.count(PageRow.id)).where(pending)).scalar_one())
