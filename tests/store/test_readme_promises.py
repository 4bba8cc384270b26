"""What the README promises about errors, checked where the code used to differ."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest

from latestore import Page
from latestore.errors import EmptyPageError, InvalidVectorError
from latestore.ingest.sources import SourceError, open_source
from tests.helpers import precomputed_store

DIM = 8


def test_blank_pages_are_empty_page_errors_before_any_encoder_runs(tmp_path: Path) -> None:
    with precomputed_store(tmp_path / "s.db", DIM) as store:
        for text in ("", "   ", "\n\t"):
            with pytest.raises(EmptyPageError):
                store.add_pages([Page(text=text)])
        assert store.count() == 0


@pytest.mark.parametrize("shape", [(DIM,), ()])
def test_a_query_that_is_not_2d_reports_its_shape(tmp_path: Path, shape: tuple[int, ...]) -> None:
    with precomputed_store(tmp_path / "s.db", DIM) as store:
        store.add_pages([Page(vectors=np.eye(2, DIM, dtype=np.float32))])
        with pytest.raises(InvalidVectorError, match=re.escape(f"got shape {shape}")):
            store.search(np.ones(shape, np.float32))


def test_a_valid_pdf_without_pages_is_not_called_corrupt(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    pdfium.PdfDocument.new().save(buffer)
    path = tmp_path / "empty.pdf"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(SourceError, match=r"^PDF has no pages$"):
        open_source(path, dpi=72, chunk_chars=1500)
    path.write_bytes(buffer.getvalue()[:120])  # the same file cut short
    with pytest.raises(SourceError, match="corrupt or truncated"):
        open_source(path, dpi=72, chunk_chars=1500)
