"""An encoder that hands back vectors computed elsewhere (on Ray encode actors).

Distributed ingestion encodes on actors and writes from the driver through the
ordinary ``Store.upsert_pages``, so pages are stored exactly as a local ingestion stores
them: same rows, same ``encoded_with`` fingerprint, same window counts. The store
asks its encoder for vectors; this one looks them up by page content instead of
running a model. It carries the real encoder's identity (name, dim, fingerprint,
window settings), so the store's fingerprint checks hold as for the real model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from latestore.encoders import PageContent
from latestore.errors import EncoderError
from latestore.internal import EncodedPage, WindowSettings


def content_key(text: str | None, image_pixels: bytes | None) -> str:
    """What identifies a page's content to the encoder: its text and decoded pixels."""
    digest = hashlib.sha256()
    digest.update(b"T" if text is not None else b"-")
    digest.update((text or "").encode())
    digest.update(b"I" if image_pixels is not None else b"-")
    digest.update(image_pixels or b"")
    return digest.hexdigest()


def key_of(content: PageContent) -> str:
    image = content.image
    pixels = None if image is None else image.tobytes()
    return content_key(content.text, pixels)


@dataclass(frozen=True)
class EncoderIdentity:
    """Everything a store records of an encoder, and what it can encode."""

    name: str
    dim: int
    fingerprint: str
    spec: str | None
    batch_size: int
    windowing: dict[str, Any] | None
    text_error: str | None
    image_error: str | None
    supersedes: tuple[str, ...] = ()  # the encoder's earlier revisions (revised_fingerprint)
    revision_note: str = ""
    # How it was loaded (load_encoder's record: vector options, hub id and commit), so a
    # store created by a Ray ingest records it as Store.open would.
    build: dict[str, Any] | None = None


class ReplayEncoder:
    """Answers ``encode_pages`` from vectors registered with :meth:`provide`."""

    device = "cpu"

    def __init__(self, identity: EncoderIdentity) -> None:
        self.identity = identity
        self.name = identity.name
        self.dim = identity.dim
        self.fingerprint = identity.fingerprint
        self.supersedes = identity.supersedes
        self.revision_note = identity.revision_note
        self.spec = identity.spec
        self.build = identity.build
        self.batch_size = identity.batch_size
        self._ready: dict[str, EncodedPage] = {}

    def provide(self, key: str, page: EncodedPage) -> None:
        self._ready[key] = page

    def forget(self) -> None:
        self._ready.clear()

    def _take(self, pages: Sequence[PageContent]) -> list[EncodedPage]:
        out = []
        for page in pages:
            found = self._ready.get(key_of(page))
            if found is None:
                raise EncoderError("a page reached the store that no encode actor encoded")
            out.append(found)
        return out

    def encode_pages(self, pages: Sequence[PageContent]) -> list[npt.NDArray[np.float32]]:
        return [p.vectors for p in self._take(pages)]

    def encode_queries(self, queries: Sequence[str]) -> list[npt.NDArray[np.float32]]:
        raise EncoderError("distributed ingestion encodes pages only")


class WindowedReplayEncoder(ReplayEncoder):
    """The replay of an encoder that reads pages in windows (it reports cut counts)."""

    def __init__(self, identity: EncoderIdentity) -> None:
        super().__init__(identity)
        assert identity.windowing is not None
        self.windowing = WindowSettings.from_options(identity.windowing)

    def with_windowing(self, settings: WindowSettings) -> WindowedReplayEncoder:
        if settings.as_options() != self.windowing.as_options():
            raise EncoderError("distributed ingestion writes with the encode actors' settings")
        return self

    def encode_pages_with_counts(self, pages: Sequence[PageContent]) -> list[EncodedPage]:
        return self._take(pages)


def replay_for(identity: EncoderIdentity) -> ReplayEncoder:
    if identity.windowing is not None:
        return WindowedReplayEncoder(identity)
    return ReplayEncoder(identity)
