"""The oracle's inputs: real pages and short, long and non-English queries.

Pages are the shared ViDoRe sample's images and shared PDF pages rendered at two sizes
(20 and 72 dpi): with the tiny checkpoints' visual-token budget the small rendering fits
inside it and the large one is scaled down, so both ends of the pixel budget run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_DATA
from tests.oracle.texts import QUERIES

__all__ = ["PDF_DPIS", "QUERIES", "pages"]

PDF_DPIS = (20, 72)


def pages() -> list[Any]:
    """Two ViDoRe images and a PDF page at each of :data:`PDF_DPIS` (four in all)."""
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    from PIL import Image

    images: list[Any] = []
    for name in ("0.png", "1.png"):
        with Image.open(SHARED_DATA / "vidore_arxivqa_sample" / "images" / name) as image:
            images.append(image.convert("RGB"))
    pdf = SHARED_DATA / "pdfs" / "us-treasury-fy2024-financial-report-executive-summary.pdf"
    images.extend(_render(pdf, 1, dpi) for dpi in PDF_DPIS)
    return images


def _render(pdf: Path, index: int, dpi: int) -> Any:
    import pypdfium2

    document = pypdfium2.PdfDocument(str(pdf))
    try:
        return document[index].render(scale=dpi / 72).to_pil().convert("RGB")
    finally:
        document.close()
