"""Every ColBERT family reads long pages in windows, or truncates them as it always did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from latestore.encoders import PageContent, fingerprint_of
from latestore.encoders.registry import load_encoder
from latestore.encoders.windows import plan_windows
from latestore.errors import EncoderError
from tests.encoders.test_colbert_families import WRITERS

TEXT = "late interaction search is what the vector store is, hello world! " * 6


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {family: write(root / family) for family, write in WRITERS.items()}


def _legacy(encoder: Any, text: str) -> np.ndarray:
    """A document as ColBERTEncoder encoded it before windows: one truncated input."""
    ids, attention, keep = encoder._tokenize([text], is_query=False)
    with torch.inference_mode():
        projected = encoder.net(ids, attention)
    vectors = torch.nn.functional.normalize(projected.float(), dim=-1)
    return vectors[0][keep[0]].numpy()


def _head_tail(encoder: Any) -> tuple[int, int]:
    """Rows a window keeps before and after its text: special tokens and marker."""
    marker = 0 if encoder._document_marker is None else 1
    head = len(encoder._prefix) + marker - (1 if encoder.prompts.drop_first_token else 0)
    return head, len(encoder._suffix)


@pytest.mark.parametrize("family", list(WRITERS))
def test_windows_off_is_the_old_truncation_and_fingerprint(
    checkpoints: dict[str, Path], family: str
) -> None:
    encoder = load_encoder(checkpoints[family], device="cpu", document_length=12, windows=False)
    page = encoder.encode_pages_with_counts([PageContent(text=TEXT)])[0]
    np.testing.assert_allclose(page.vectors, _legacy(encoder, TEXT), atol=1e-5)
    total = len(encoder.tokenizer(TEXT, add_special_tokens=False)["input_ids"])
    assert (page.text_tokens, page.tokens_dropped) == (total, total - encoder._span)
    old_parts = {
        "family": family,
        "weights": encoder._weights_hash,
        "dim": encoder.dim,
        "prompts": encoder.prompts.as_dict(),
        "pooling": None,
    }
    assert encoder.fingerprint == fingerprint_of(old_parts)


@pytest.mark.parametrize("family", list(WRITERS))
def test_windows_cover_the_whole_page_with_each_windows_markers(
    checkpoints: dict[str, Path], family: str
) -> None:
    options = {"device": "cpu", "document_length": 12}
    truncated = load_encoder(checkpoints[family], **options, windows=False)
    encoder = load_encoder(checkpoints[family], **options, windows=True, window_stride=5)
    assert encoder.fingerprint != truncated.fingerprint
    ids = encoder.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    page = encoder.encode_pages_with_counts([PageContent(text=TEXT)])[0]
    assert (page.text_tokens, page.tokens_dropped) == (len(ids), 0)
    plan = plan_windows(len(ids), encoder._span, 5)
    assert len(plan) > 5
    skip = encoder._skip_set
    head, tail = _head_tail(encoder)
    kept_text = [sum(1 for t in ids[w.own_start : w.own_end] if t not in skip) for w in plan]
    assert len(page.vectors) == sum(kept_text) + len(plan) * (head + tail)
    # The first window reads what truncation reads: its rows are truncation's rows.
    legacy = _legacy(truncated, TEXT)
    first = head + kept_text[0]
    np.testing.assert_allclose(page.vectors[:first], legacy[:first], atol=1e-5)
    np.testing.assert_allclose(
        page.vectors[first : first + tail], legacy[len(legacy) - tail :], atol=1e-5
    )
    # Queries are not windowed.
    np.testing.assert_array_equal(
        encoder.encode_queries(["hello world"])[0], truncated.encode_queries(["hello world"])[0]
    )


def test_window_options_are_checked(checkpoints: dict[str, Path]) -> None:
    path = checkpoints["colbert"]
    with pytest.raises(EncoderError, match="window_stride"):
        load_encoder(path, device="cpu", document_length=12, windows=True, window_stride=50)
    with pytest.raises(EncoderError):
        load_encoder(path, device="cpu", max_page_tokens=0)
    capped = load_encoder(path, device="cpu", windows=True, max_page_tokens=7)
    page = capped.encode_pages_with_counts([PageContent(text=TEXT)])[0]
    assert page.tokens_dropped == page.text_tokens - 7


@pytest.mark.parametrize("family", list(WRITERS))
def test_window_rows_count_what_each_window_kept(checkpoints: dict[str, Path], family: str) -> None:
    """A skiplist drops tokens window by window: each window's recorded rows are what it
    kept, so best-window scoring splits the page where the encoder did."""
    encoder = load_encoder(
        checkpoints[family], device="cpu", document_length=12, windows=True, window_stride=5
    )
    ids = encoder.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    page = encoder.encode_pages_with_counts([PageContent(text=TEXT)])[0]
    skip = encoder._skip_set
    head, tail = _head_tail(encoder)
    plan = plan_windows(len(ids), encoder._span, 5)
    want = [
        sum(1 for t in ids[w.own_start : w.own_end] if t not in skip) + head + tail for w in plan
    ]
    assert page.window_rows == tuple(n for n in want if n > 0)
    assert sum(page.window_rows) == len(page.vectors)
    short = encoder.encode_pages_with_counts([PageContent(text="hello world")])[0]
    assert short.window_rows is None  # one window: nothing to split
