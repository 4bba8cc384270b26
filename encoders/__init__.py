"""Encoders: models that turn pages and queries into per-token vectors."""

if __name__ != "latestore.encoders":
    raise ImportError(f"import latestore.encoders, not {__name__!r}: see pyproject package-dir")


from latestore.encoders.base import (
    Encoder,
    PageContent,
    PrecomputedVectors,
    TokenVectors,
    fingerprint_of,
    l2_normalise,
    revised_fingerprint,
    superseded_by,
)
from latestore.encoders.moved import install as _serve_moved_paths

# The family modules moved into text/ and vision/: their old paths forward (and warn).
_serve_moved_paths()

__all__ = [
    "Encoder",
    "PageContent",
    "PrecomputedVectors",
    "TokenVectors",
    "default_encoder",
    "fingerprint_of",
    "l2_normalise",
    "revised_fingerprint",
    "superseded_by",
]


def default_encoder() -> Encoder:
    """The offline MiniLM encoder (loaded on first use; ~1 s on a laptop)."""
    from latestore.encoders.text.minilm import MiniLMEncoder

    return MiniLMEncoder()
