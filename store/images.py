"""Decoding page images safely (size limits before pixels are decoded)."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from latestore.errors import InvalidInputError

# 64 megapixels: an A0 poster at 300 dpi is ~140 MP, but no retriever looks at more than
# a few megapixels; larger inputs are almost always mistakes or decompression bombs.
MAX_IMAGE_PIXELS = 64_000_000


class UnreadableImageError(InvalidInputError):
    """An image that cannot be decoded, or is too large to decode safely."""


def load_image(source: bytes | Path | str) -> Image.Image:
    """Open, size-check and fully decode an image as RGB."""
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else Path(source).open("rb")  # noqa: SIM115
    except OSError as exc:
        raise UnreadableImageError(f"cannot open image {source!s:.200}: {exc}") from exc
    with handle, _decoding():
        image = Image.open(handle)
        _check_size(image)
        image.load()
        return image.convert("RGB")


def check_image(data: bytes) -> None:
    """UnreadableImageError unless ``data`` is an image of a known format within the
    size limit and structurally sound (checksums, chunk layout), without decoding its
    pixels: for pages whose vectors are given, whose image is only stored and served."""
    with _decoding(), Image.open(io.BytesIO(data)) as image:
        _check_size(image)
        image.verify()


@contextlib.contextmanager
def _decoding() -> Iterator[None]:
    """Decompression-bomb warnings as errors, and every decoding failure as an
    UnreadableImageError."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except UnreadableImageError:
            raise
        except (
            OSError,
            ValueError,
            SyntaxError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
        ) as exc:
            raise UnreadableImageError(f"unreadable image: {exc}") from exc


def _check_size(image: Image.Image) -> None:
    """Refuse an image over the pixel limit from its header, before any decoding."""
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise UnreadableImageError(
            f"image is {width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS:,}"
        )
