"""Long pages in windows: the plan, the MiniLM encoder, the cap, pooling after windows."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch

from latestore.encoders import PageContent, fingerprint_of
from latestore.encoders.pooling import PooledEncoder
from latestore.encoders.text.minilm import MiniLMEncoder
from latestore.encoders.windows import (
    WindowSettings,
    as_windowed,
    best_window_maxsim,
    plan_windows,
    text_token_ids,
    window_vector_counts,
)
from latestore.errors import EncoderError


@pytest.fixture(scope="module")
def windowed(minilm: MiniLMEncoder) -> MiniLMEncoder:
    return minilm.with_windowing(WindowSettings())


LONG = " ".join(f"sentence {i} tells of turbine blade {i % 7} and nozzle flow." for i in range(60))


@pytest.mark.parametrize(
    ("n", "span", "stride"),
    [
        (0, 5, 5),
        (1, 5, 3),
        (5, 5, 5),
        (6, 5, 5),
        (10, 6, 4),
        (100, 16, 12),
        (97, 16, 1),
        (50, 8, 8),
    ],
)
def test_kept_ranges_partition_the_page(n: int, span: int, stride: int) -> None:
    plan = plan_windows(n, span, stride)
    assert plan[0].start == 0 and plan[-1].end == n
    kept: list[int] = []
    for window in plan:
        assert window.end - window.start <= span
        assert window.start <= window.own_start <= window.own_end <= window.end
        kept += range(window.own_start, window.own_end)
    assert kept == list(range(n))  # every token once, in order
    starts = [w.start for w in plan]
    assert starts == list(range(0, stride * len(plan), stride))


def test_overlaps_split_at_their_midpoint() -> None:
    plan = plan_windows(10, 6, 4)  # windows 0..6 and 4..10 overlap on 4..6
    assert [(w.own_start, w.own_end) for w in plan] == [(0, 5), (5, 10)]


@pytest.mark.parametrize(
    "options",
    [
        {"window_stride": 0},
        {"windows": True, "window_stride": 255},
        {"max_page_tokens": 0},
        {"max_page_tokens": 1.5},
        {"windows": "yes"},
        {"window_stride": True},
        {"window_size": 10},
    ],
)
def test_bad_window_settings_are_typed_errors(options: dict[str, Any]) -> None:
    with pytest.raises(EncoderError):
        WindowSettings.from_options(options).resolved(254)


def _legacy(encoder: MiniLMEncoder, text: str) -> np.ndarray:
    """What MiniLMEncoder computed before windows: the first 256 tokens, specials included."""
    batch = encoder._tokenizer([text], truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        hidden = encoder._model(**batch).last_hidden_state
    return torch.nn.functional.normalize(hidden.float(), dim=-1)[0].numpy()


def test_windows_off_is_the_truncated_encoding_with_its_old_fingerprint(
    minilm: MiniLMEncoder, windowed: MiniLMEncoder
) -> None:
    truncated = windowed.with_windowing(WindowSettings(enabled=False))
    texts = ["A short page.", LONG]
    pages = truncated.encode_pages_with_counts([PageContent(text=t) for t in texts])
    for text, page in zip(texts, pages, strict=True):
        np.testing.assert_allclose(page.vectors, _legacy(minilm, text), atol=1e-5)
    n_long = len(minilm._tokenizer(LONG, add_special_tokens=False)["input_ids"])
    assert (pages[1].text_tokens, pages[1].tokens_dropped) == (n_long, n_long - 254)
    assert (pages[0].tokens_dropped, len(pages[1].vectors)) == (0, 256)
    legacy_parts = {
        "family": "minilm-tokens",
        "weights": minilm._weights_hash,
        "dim": 384,
        "page_max_tokens": 256,
        "query_max_tokens": 64,
    }
    assert truncated.fingerprint == fingerprint_of(legacy_parts)
    assert minilm.fingerprint == windowed.fingerprint  # the default: windows on
    assert windowed.fingerprint != truncated.fingerprint  # windows are in the fingerprint
    assert truncated._model is windowed._model  # settings change, the model is shared
    stride = windowed.with_windowing(WindowSettings(stride=100))
    assert len({stride.fingerprint, windowed.fingerprint, truncated.fingerprint}) == 3


def test_long_page_keeps_every_token_once_with_each_windows_specials(
    minilm: MiniLMEncoder, windowed: MiniLMEncoder
) -> None:
    tokenizer = minilm._tokenizer
    ids = tokenizer(LONG, add_special_tokens=False)["input_ids"]
    assert len(ids) > 600
    page = windowed.encode_pages_with_counts([PageContent(text=LONG)])[0]
    plan = plan_windows(len(ids), 254, windowed.windowing.stride or 0)
    assert len(plan) >= 3
    assert (page.text_tokens, page.tokens_dropped) == (len(ids), 0)
    assert len(page.vectors) == len(ids) + 2 * len(plan)
    # Each window's rows are that window encoded alone, [CLS] and [SEP] included.
    row = 0
    for window in plan:
        alone = [tokenizer.cls_token_id, *ids[window.start : window.end], tokenizer.sep_token_id]
        with torch.inference_mode():
            hidden = minilm._model(input_ids=torch.tensor([alone])).last_hidden_state
        expected = torch.nn.functional.normalize(hidden.float(), dim=-1)[0].numpy()
        own = slice(1 + window.own_start - window.start, 1 + window.own_end - window.start)
        want = np.concatenate([expected[:1], expected[own], expected[-1:]])
        got = page.vectors[row : row + len(want)]
        np.testing.assert_allclose(got, want, atol=1e-4)
        row += len(want)
    assert row == len(page.vectors)
    # Short pages: one window, the same vectors as truncation.
    short = windowed.encode_pages([PageContent(text="A short page.")])[0]
    np.testing.assert_allclose(short, _legacy(minilm, "A short page."), atol=1e-5)


def test_a_phrase_past_the_first_window_is_found_only_with_windows(
    minilm: MiniLMEncoder, windowed: MiniLMEncoder
) -> None:
    filler = " ".join("the cook stirs the soup and tastes the broth." for _ in range(40))
    page = PageContent(text=f"{filler} Glaciers in Iceland calve icebergs into the lagoon.")
    query = minilm.encode_queries(["icebergs calving from Iceland glaciers"])[0]
    whole = windowed.encode_pages([page])[0]
    truncated = minilm.with_windowing(WindowSettings(enabled=False)).encode_pages([page])[0]

    def maxsim(doc: np.ndarray) -> float:
        return float((query @ doc.T).max(axis=1).sum())

    assert maxsim(whole) > maxsim(truncated) + 2.0  # the query's words are on the page


def test_cap_bounds_a_huge_page_and_counts_what_it_dropped(minilm: MiniLMEncoder) -> None:
    capped = minilm.with_windowing(WindowSettings(max_page_tokens=300))
    huge = "turbine " * 300_000  # 2.4 MB of text, tokenised piece by piece
    page = capped.encode_pages_with_counts([PageContent(text=huge)])[0]
    assert page.text_tokens == 300_000
    assert page.tokens_dropped == 300_000 - 300
    assert len(page.vectors) == 300 + 2 * 2  # two windows of at most 254 text tokens
    off = minilm.with_windowing(WindowSettings(enabled=False))
    truncated = off.encode_pages_with_counts([PageContent(text=huge)])[0]
    assert (truncated.tokens_dropped, len(truncated.vectors)) == (300_000 - 254, 256)
    # Counting in pieces gives the same count as tokenising the whole text at once.
    text = " ".join(f"w{i}" for i in range(40_000))  # > 100k chars
    whole = len(minilm._tokenizer(text, add_special_tokens=False)["input_ids"])
    assert text_token_ids(minilm._tokenizer, [text], 10)[0][1] == whole


def test_bad_options_on_the_encoder_raise_and_keep_it(minilm: MiniLMEncoder) -> None:
    before = minilm.fingerprint
    with pytest.raises(EncoderError):
        minilm.with_windowing(WindowSettings(stride=1000))
    assert minilm.fingerprint == before


def test_pooling_applies_after_windowing(windowed: MiniLMEncoder) -> None:
    pooled = PooledEncoder(windowed, pool_factor=2)
    assert as_windowed(pooled) is pooled
    page = pooled.encode_pages_with_counts([PageContent(text=LONG)])[0]
    full = windowed.encode_pages_with_counts([PageContent(text=LONG)])[0]
    assert len(page.vectors) == len(full.vectors) // 2
    assert (page.text_tokens, page.tokens_dropped) == (full.text_tokens, 0)
    np.testing.assert_allclose(np.linalg.norm(page.vectors, axis=1), 1.0, rtol=1e-5)
    off = pooled.with_windowing(WindowSettings(enabled=False))
    assert isinstance(off, PooledEncoder) and off.pool_factor == 2
    assert len(off.encode_pages([PageContent(text=LONG)])[0]) == 256 // 2
    assert off.fingerprint != pooled.fingerprint


def test_a_wrapper_of_a_model_without_windows_has_none(rng: np.random.Generator) -> None:
    from latestore.encoders import PrecomputedVectors

    pooled = PooledEncoder(PrecomputedVectors(dim=8), pool_factor=2)
    assert as_windowed(pooled) is None
    assert as_windowed(PrecomputedVectors(dim=8)) is None


def test_best_window_maxsim_is_the_best_windows_exact_maxsim(windowed: MiniLMEncoder) -> None:
    """The per-window score over a real windowed page equals a brute-force MaxSim of
    each window's stored vectors (float64), and never exceeds MaxSim over the union."""
    text = " ".join(f"word{i} of a long page about pumps and valves" for i in range(120))
    (page,) = windowed.encode_pages_with_counts([PageContent(text=text)])
    kept = page.text_tokens - page.tokens_dropped
    stride = windowed.windowing.stride
    assert stride is not None
    counts = window_vector_counts(kept, windowed._span, stride, n_special=2)
    assert len(counts) > 2 and sum(counts) == len(page.vectors)
    (query,) = windowed.encode_queries(["valves of the pump"])
    bounds = np.cumsum([0, *counts])
    brute = max(
        float((query.astype(np.float64) @ page.vectors[a:b].astype(np.float64).T).max(1).sum())
        for a, b in itertools.pairwise(bounds)
    )
    score = best_window_maxsim(query, page.vectors, counts)
    assert score == pytest.approx(brute, rel=1e-5)
    union = float((query @ page.vectors.T).max(1).sum())
    assert score <= union + 1e-5
    assert best_window_maxsim(query, page.vectors, [len(page.vectors)]) == pytest.approx(union)
    with pytest.raises(EncoderError, match="do not cover"):
        best_window_maxsim(query, page.vectors, counts[:-1])
