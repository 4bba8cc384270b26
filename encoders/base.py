"""The encoder protocol: what the store needs from any model.

An encoder turns queries and pages into per-token vectors: one float32 array of shape
``(n_tokens, dim)`` per input, each row L2-normalised.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from PIL.Image import Image

TokenVectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class PageContent:
    """What an encoder sees of a page: its text, its image, or both."""

    text: str | None = None
    image: Image | None = None


@runtime_checkable
class Encoder(Protocol):
    """A late-interaction model.

    ``fingerprint`` identifies everything that changes the vectors (family, weights,
    dim, prompts, pooling); a store refuses to open with an encoder whose fingerprint
    differs from the one it was built with. An encoder may also list the fingerprints
    of its earlier revisions as ``supersedes`` (and say what changed in
    ``revision_note``), see :func:`revised_fingerprint`.
    """

    name: str
    dim: int
    fingerprint: str
    device: str
    batch_size: int

    def encode_queries(self, queries: Sequence[str]) -> list[TokenVectors]: ...

    def encode_pages(self, pages: Sequence[PageContent]) -> list[TokenVectors]: ...


def fingerprint_of(parts: dict[str, Any]) -> str:
    """A short stable digest of an encoder's identifying settings."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def revised_fingerprint(parts: dict[str, Any], revision: int) -> tuple[str, tuple[str, ...]]:
    """``(fingerprint, supersedes)`` of an encoder at latestore's encoding ``revision``.

    Revision 1 adds nothing to ``parts``, so fingerprints made before revisions existed
    stay as they were. A latestore fix that changes the vectors of a model a user may
    already have stored bumps the revision for the checkpoints it affects; the earlier
    revisions' fingerprints are kept as ``supersedes``. A store recorded with one of them
    still opens with the new encoder: its fingerprint moves to the new revision, and the
    pages encoded before are re-encoded by ``latestore reindex --re-encode``
    (:meth:`latestore.Store.reencode`).
    """

    def at(number: int) -> str:
        return fingerprint_of(parts if number == 1 else {**parts, "revision": number})

    return at(revision), tuple(at(number) for number in range(1, revision))


def superseded_by(encoder: Encoder) -> tuple[str, ...]:
    """Fingerprints of earlier revisions of ``encoder`` (none for most encoders)."""
    return tuple(getattr(encoder, "supersedes", ()))


def hash_files(paths: Sequence[Path]) -> str:
    """sha256 over the given files' bytes, in order (weights identity)."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


def page_texts(encoder_name: str, pages: Sequence[PageContent]) -> list[str]:
    """The pages' texts, for text-only encoders; EncoderError if a page has none."""
    from latestore.errors import EncoderError

    texts: list[str] = []
    for page in pages:
        if not page.text:
            raise EncoderError(f"{encoder_name} encodes text only; a page has no text")
        texts.append(page.text)
    return texts


def length_sorted_batches(texts: Sequence[str], batch_size: int) -> Iterator[list[int]]:
    """Indices of ``texts`` in batches of similar length.

    Batching texts of similar length keeps padding (wasted FLOPs) small; callers put
    results back by index.
    """
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def l2_normalise(vectors: npt.NDArray[np.floating[Any]]) -> TokenVectors:
    """Row-wise L2 normalisation in float32; all-zero rows stay zero."""
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=-1, keepdims=True)
    result: TokenVectors = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
    return result


@dataclass
class PrecomputedVectors:
    """An encoder for stores fed with vectors computed elsewhere (or synthetic ones).

    Pages and queries must then carry their vectors; asking it to encode raises.
    """

    dim: int
    name: str = "precomputed"
    device: str = "cpu"
    batch_size: int = 256
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        self.fingerprint = fingerprint_of(
            {"family": "precomputed", "name": self.name, "dim": self.dim}
        )

    def encode_queries(self, queries: Sequence[str]) -> list[TokenVectors]:
        from latestore.errors import EncoderError

        raise EncoderError(
            f"encoder {self.name!r} holds no model: pass query vectors instead of text"
        )

    def encode_pages(self, pages: Sequence[PageContent]) -> list[TokenVectors]:
        from latestore.errors import EncoderError

        raise EncoderError(f"encoder {self.name!r} holds no model: give each Page its vectors")
