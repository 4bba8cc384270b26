"""Pages and queries into checked token vectors, with the store's encoder.

Pages that bring their own vectors are only checked; the rest are encoded in
batches of the encoder's size. Every vector set is validated against the store's
dim and storage dtype before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from latestore.encoders import PageContent
from latestore.errors import EncoderError
from latestore.models import Page
from latestore.store.encoded import PRECOMPUTED, PageEncoding, ProgressCallback, encode_counted
from latestore.store.encoder_slot import EncoderSlot
from latestore.store.validation import check_query_texts, checked_vectors

if TYPE_CHECKING:
    from latestore.store.database import Database

Query = str | npt.NDArray[np.floating]


def encode_missing(
    db: Database,
    encoders: EncoderSlot,
    vectors: dict[int, PageEncoding],
    items: list[Page],
    todo: list[int],
    batch_size: int | None,
    on_progress: ProgressCallback | None,
) -> None:
    """Add to ``vectors`` the encoding of ``items[i]`` for each ``i`` in ``todo`` not there."""
    missing = [i for i in todo if i not in vectors]
    if missing:
        encoded = encode_pages(db, encoders, [items[i] for i in missing], batch_size, on_progress)
        vectors.update(zip(missing, encoded, strict=True))


def encode_pages(
    db: Database,
    encoders: EncoderSlot,
    pages: list[Page],
    batch_size: int | None,
    on_progress: ProgressCallback | None,
) -> list[PageEncoding]:
    """Checked vectors for each page, in order; ``on_progress(done, total)`` as it goes."""
    out: list[PageEncoding | None] = [None] * len(pages)
    need = []
    for i, page in enumerate(pages):
        if page.vectors is not None:
            given = checked_vectors(page.vectors, db.dim, db.dtype, page_label(page, i))
            if page.image is not None:
                # Nothing decodes a stored image whose vectors are given; garbage bytes
                # would be served later as a broken image (and fail every thumbnail).
                from latestore.store.images import check_image

                check_image(page.image)
            out[i] = PageEncoding(given, None, None, PRECOMPUTED)
        else:
            need.append(i)
    done = len(pages) - len(need)
    if done and on_progress is not None:
        on_progress(done, len(pages))
    if need:
        encoder = encoders.get()
        size = batch_size or encoder.batch_size
        for start in range(0, len(need), size):
            chunk = need[start : start + size]
            encoded = encode_counted(encoder, [page_content(pages[i]) for i in chunk])
            if len(encoded) != len(chunk):
                raise EncoderError(
                    f"encoder returned {len(encoded)} results for {len(chunk)} pages"
                )
            for i, page_encoding in zip(chunk, encoded, strict=True):
                out[i] = page_encoding.checked(db.dim, db.dtype, page_label(pages[i], i))
            done += len(chunk)
            if on_progress is not None:
                on_progress(done, len(pages))
    return [v for v in out if v is not None]


def query_vectors(
    encoders: EncoderSlot, dim: int, queries: Sequence[Query]
) -> list[npt.NDArray[np.float32]]:
    """Checked float32 vectors per query: text is encoded in one batch, arrays checked."""
    texts = [(i, q) for i, q in enumerate(queries) if isinstance(q, str)]
    out: list[npt.NDArray[np.float32] | None] = [None] * len(queries)
    if texts:
        check_query_texts([q for _, q in texts])
        encoded = encoders.get().encode_queries([q for _, q in texts])
        for (i, _), v in zip(texts, encoded, strict=True):
            out[i] = checked_vectors(v, dim, "float32", f"query {i}")
    for i, q in enumerate(queries):
        if out[i] is None:
            out[i] = checked_vectors(q, dim, "float32", f"query {i}")
    return [v for v in out if v is not None]


def page_label(page: Page, position: int) -> str:
    return f"page {page.external_id!r}" if page.external_id else f"page #{position}"


def page_content(page: Page) -> PageContent:
    image = None
    if page.image is not None or page.image_path is not None:
        from latestore.store.images import load_image

        source: bytes | Path = page.image if page.image is not None else page.image_path  # type: ignore[assignment]
        image = load_image(source)
    return PageContent(text=page.text, image=image)
