"""Long pages in overlapping windows, so no part of a page is silently dropped.

A text encoder reads at most its model length at once (MiniLM 256 tokens, ColBERT its
``document_length``). A longer page is tokenised once, capped at ``max_page_tokens``
text tokens, and cut into windows of the model length (special tokens and the
checkpoint's marker included) that start every ``stride`` text tokens. Every window is
encoded with its own special tokens, and all windows' vectors together are the page's
vectors, so MaxSim over the page stays exact over every token it kept.

Rules:

* **Overlap.** A text token inside two windows keeps one vector: overlaps are split at
  their midpoint, so each token's vector comes from the window where it has the most
  context on its far side.
* **Special tokens and markers** (``[CLS]``, ``[SEP]``, ``[D]``, ...) are kept in every
  window, as the checkpoint adds them: each one summarises its own window, as it
  would for a passage of that length.
* **Cap.** Text tokens past ``max_page_tokens`` are dropped and counted, so a 10 MB
  text costs bounded memory and model time, and the store reports what was cut.

Windows are on by default (a store reads whole pages). With windows off
(``windows=False``), a page is truncated to one window, as latestore did before windows
existed, and the cut is still counted; the encoder's fingerprint is then the one it had
then, so older stores open unchanged (a store keeps the settings it recorded).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import torch

from latestore.encoders.base import PageContent, TokenVectors
from latestore.errors import EncoderError

__all__ = [
    "DEFAULT_MAX_PAGE_TOKENS",
    "DEFAULT_WINDOWS",
    "EncodedPage",
    "PageWindow",
    "WindowInput",
    "WindowSettings",
    "WindowedEncoder",
    "as_windowed",
    "best_window_maxsim",
    "encode_windows",
    "plan_windows",
    "special_template",
    "split_window_options",
    "text_token_ids",
    "window_inputs",
    "window_vector_counts",
]

DEFAULT_MAX_PAGE_TOKENS = 8192
# Encoders truncate unless asked for windows: on Cranfield, windowed MiniLM pages
# scored lower than truncated ones (README, "Long pages").
DEFAULT_WINDOWS = True
WINDOW_OPTIONS = ("windows", "window_stride", "max_page_tokens")
# Texts longer than this are tokenised piece by piece, so memory stays bounded.
_PIECE_CHARS = 100_000


@dataclass(frozen=True)
class EncodedPage:
    """One page's vectors and what its encoder had to leave out.

    ``text_tokens`` counts the tokens of the page's text (special tokens and markers
    excluded); ``tokens_dropped`` those of them that reached no vector, past the
    model length (windows off) or past ``max_page_tokens`` (windows on).
    ``window_rows``: how many of ``vectors`` each window holds, in order, counted from
    what the encoder kept (so a skiplist is accounted for); None for a page of one
    window, or where the rows no longer map to windows (token pooling).
    """

    vectors: TokenVectors
    text_tokens: int
    tokens_dropped: int
    window_rows: tuple[int, ...] | None = None


@dataclass(frozen=True)
class WindowSettings:
    """How a text encoder treats pages longer than its model length.

    Parameters
    ----------
    enabled:
        Windows on; off truncates every page to one window (the behaviour, and the
        fingerprint, of latestore before windows).
    stride:
        Text tokens from one window's start to the next; ``None`` is three quarters of
        a window's text tokens (a quarter overlaps). Must be 1 .. a window's text tokens.
    max_page_tokens:
        Text tokens per page kept at most; the rest is dropped and counted.
    """

    enabled: bool = True
    stride: int | None = None
    max_page_tokens: int = DEFAULT_MAX_PAGE_TOKENS

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> WindowSettings:
        """Settings from loader options ``windows``, ``window_stride``, ``max_page_tokens``."""
        unknown = set(options) - set(WINDOW_OPTIONS)
        if unknown:
            raise EncoderError(f"unknown window option(s) {sorted(unknown)}")
        enabled = options.get("windows", DEFAULT_WINDOWS)
        stride = options.get("window_stride")
        cap = options.get("max_page_tokens", DEFAULT_MAX_PAGE_TOKENS)
        if not isinstance(enabled, bool):
            raise EncoderError(f"windows must be true or false, got {enabled!r}")
        for name, value in (("window_stride", stride), ("max_page_tokens", cap)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise EncoderError(f"{name} must be an integer, got {value!r}")
        if cap < 1 or (stride is not None and stride < 1):
            raise EncoderError(
                f"window_stride and max_page_tokens must be at least 1, got {stride}, {cap}"
            )
        return cls(enabled=enabled, stride=stride, max_page_tokens=cap)

    def resolved(self, span: int) -> WindowSettings:
        """These settings for windows of ``span`` text tokens, the stride made explicit."""
        if span < 1:
            raise EncoderError(f"a window must hold at least one text token, got {span}")
        if not self.enabled:
            return WindowSettings(enabled=False)
        stride = self.stride if self.stride is not None else max(1, span - span // 4)
        if not 1 <= stride <= span:
            raise EncoderError(
                f"window_stride must be between 1 and the window's {span} text tokens, got {stride}"
            )
        return replace(self, stride=stride)

    def as_options(self) -> dict[str, Any]:
        """Loader options that rebuild these settings (what a store records)."""
        if not self.enabled:
            return {"windows": False}
        return {
            "windows": True,
            "window_stride": self.stride,
            "max_page_tokens": self.max_page_tokens,
        }

    def fingerprint_part(self) -> dict[str, Any] | None:
        """What goes into an encoder fingerprint: nothing while off (legacy fingerprint)."""
        if not self.enabled:
            return None
        return {
            "rule": "midpoint-overlap,specials-per-window",
            "stride": self.stride,
            "max_page_tokens": self.max_page_tokens,
        }


@runtime_checkable
class WindowedEncoder(Protocol):
    """A text encoder that encodes long pages in windows and reports what it cut."""

    fingerprint: str
    windowing: WindowSettings

    def with_windowing(self, settings: WindowSettings) -> WindowedEncoder: ...

    def encode_pages_with_counts(self, pages: Sequence[PageContent]) -> list[EncodedPage]: ...


def as_windowed(encoder: object) -> WindowedEncoder | None:
    """``encoder`` if it reads pages in windows, else None.

    Asked by calling, not by ``isinstance``: a wrapper (token pooling) has the methods
    but windows only when the model it wraps does, and Python 3.12's protocol check
    would not look past the wrapper's property.
    """
    try:
        getattr(encoder, "windowing")  # noqa: B009 - raises for a wrapper of a non-windowed model
    except AttributeError:
        return None
    if callable(getattr(encoder, "with_windowing", None)) and callable(
        getattr(encoder, "encode_pages_with_counts", None)
    ):
        return encoder  # type: ignore[return-value]
    return None


@dataclass(frozen=True)
class PageWindow:
    """Text positions ``[start, end)`` a window reads and ``[own_start, own_end)`` it keeps."""

    start: int
    end: int
    own_start: int
    own_end: int


def plan_windows(n_tokens: int, span: int, stride: int) -> list[PageWindow]:
    """Windows over ``n_tokens`` text tokens; the kept ranges partition ``0 .. n_tokens``.

    Examples
    --------
    >>> [(w.start, w.end, w.own_start, w.own_end) for w in plan_windows(10, 6, 4)]
    [(0, 6, 0, 5), (4, 10, 5, 10)]
    """
    if span < 1 or not 1 <= stride <= span:
        raise EncoderError(f"bad window plan: span {span}, stride {stride}")
    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + span, n_tokens)
        spans.append((start, end))
        if end >= n_tokens:
            break
        start += stride
    # Overlaps split at their midpoint: window i keeps up to (next start + own end) / 2.
    bounds = [0] + [(spans[i + 1][0] + spans[i][1]) // 2 for i in range(len(spans) - 1)]
    bounds.append(n_tokens)
    return [PageWindow(s, e, bounds[i], bounds[i + 1]) for i, (s, e) in enumerate(spans)]


def window_vector_counts(n_kept: int, span: int, stride: int, n_special: int) -> list[int]:
    """How many of a windowed page's stored vectors each window holds, in order.

    ``n_kept`` text tokens (the page's text tokens less those dropped), windows of
    ``span`` text tokens every ``stride``, ``n_special`` special and marker tokens
    kept per window: window i's vectors are the next ``counts[i]`` rows of the page.

    Examples
    --------
    >>> window_vector_counts(10, 6, 4, n_special=2)
    [7, 7]
    """
    return [w.own_end - w.own_start + n_special for w in plan_windows(n_kept, span, stride)]


def best_window_maxsim(query: TokenVectors, page: TokenVectors, counts: Sequence[int]) -> float:
    """The page's score as its best window's MaxSim (MaxP: Dai & Callan, 2019).

    MaxSim over a union of windows grows with the number of windows (more vectors,
    more chances to match), so long pages win by length; the best single window
    does not. Measured exhaustively over the windows' stored vectors, this kept the
    SciFact and PDF-page gains of windows and recovered Cranfield's loss
    (docs/ranking-quality.md). Exact: float32 dot products, summed in float32 per
    window as the MaxSim kernels do.
    """
    if sum(counts) != len(page) or any(c < 1 for c in counts):
        raise EncoderError(f"window counts {list(counts)[:8]} do not cover {len(page)} vectors")
    sims = np.asarray(query, np.float32) @ np.asarray(page, np.float32).T
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    per_window = np.maximum.reduceat(sims, starts, axis=1).sum(axis=0, dtype=np.float32)
    return float(per_window.max())


def split_window_options(options: dict[str, Any]) -> tuple[WindowSettings, dict[str, Any]]:
    """Window settings out of an encoder's options, and the options left over."""
    picked = {k: options[k] for k in WINDOW_OPTIONS if k in options}
    rest = {k: v for k, v in options.items() if k not in WINDOW_OPTIONS}
    return WindowSettings.from_options(picked), rest


def special_template(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after one text, as it defines them.

    Read from the tokenizer's own output on a probe text, so every checkpoint's
    template (``[CLS] x [SEP]``, ``<s> x </s>``, ...) comes out as it ships.
    """
    probe = "latestore"
    plain = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start], full[start + len(plain) :]
    raise EncoderError("cannot find where the tokenizer puts a text between its special tokens")


def _pieces(text: str) -> list[str]:
    """``text`` in pieces of about ``_PIECE_CHARS``, cut at whitespace where there is some."""
    pieces: list[str] = []
    start = 0
    while len(text) - start > _PIECE_CHARS:
        cut = text.rfind(" ", start + _PIECE_CHARS // 2, start + _PIECE_CHARS)
        cut = cut + 1 if cut > start else start + _PIECE_CHARS
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


def text_token_ids(tokenizer: Any, texts: Sequence[str], cap: int) -> list[tuple[list[int], int]]:
    """Each text's token ids (no special tokens), at most ``cap`` of them, and its full count.

    Long texts are tokenised in pieces cut at spaces, and pieces past the cap are only
    counted, so a huge text never holds all its token objects at once. Word-piece and
    byte-level tokenisers split at spaces themselves, so the count is exact for them.
    """
    short = [i for i, t in enumerate(texts) if len(t) <= _PIECE_CHARS]
    out: list[tuple[list[int], int]] = [([], 0)] * len(texts)
    if short:
        encoded = tokenizer(
            [texts[i] for i in short], add_special_tokens=False, truncation=False, verbose=False
        )["input_ids"]
        for i, ids in zip(short, encoded, strict=True):
            out[i] = (list(ids[:cap]), len(ids))
    for i, text in enumerate(texts):
        if len(text) <= _PIECE_CHARS:
            continue
        kept: list[int] = []
        total = 0
        for piece in _pieces(text):
            ids = tokenizer(piece, add_special_tokens=False, truncation=False, verbose=False)[
                "input_ids"
            ]
            total += len(ids)
            if len(kept) < cap:
                kept.extend(ids[: cap - len(kept)])
        out[i] = (kept, total)
    return out


@dataclass(frozen=True)
class WindowInput:
    """One model input: its ids and which of its positions become page vectors."""

    page: int
    ids: list[int]
    keep: list[bool]


WindowBuilder = Callable[[list[int], int, int], tuple[list[int], list[bool]]]


def window_inputs(
    token_ids: Sequence[tuple[list[int], int]],
    span: int,
    settings: WindowSettings,
    build: WindowBuilder,
) -> tuple[list[WindowInput], list[tuple[int, int]]]:
    """Model inputs for every window of every page, and each page's (tokens, dropped).

    ``build(window_ids, own_start, own_end)`` adds the checkpoint's special tokens and
    marker to one window's text ids and says which positions to keep; the kept text
    positions are ``own_start .. own_end`` relative to the window.
    """
    inputs: list[WindowInput] = []
    counts: list[tuple[int, int]] = []
    for page, (ids, total) in enumerate(token_ids):
        if settings.enabled:
            assert settings.stride is not None
            plan = plan_windows(len(ids), span, settings.stride)
        else:
            plan = plan_windows(min(len(ids), span), span, span)
        kept = sum(w.own_end - w.own_start for w in plan)
        counts.append((total, total - kept))
        for w in plan:
            own = (w.own_start - w.start, w.own_end - w.start)
            model_ids, keep = build(ids[w.start : w.end], *own)
            inputs.append(WindowInput(page, model_ids, keep))
    return inputs, counts


Forward = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def encode_windows(
    inputs: Sequence[WindowInput],
    n_pages: int,
    *,
    forward: Forward,
    pad_id: int,
    batch_size: int,
    device: str,
    dim: int,
) -> list[TokenVectors]:
    """Run the model over every window (batched by length) and join each page's vectors.

    ``forward(input_ids, attention_mask)`` returns L2-normalised ``(batch, length, dim)``
    float vectors; padding is right-aligned, so kept positions index it directly.
    """
    import torch  # the settings above are read by the CLI, which must not load torch

    per_window: list[TokenVectors | None] = [None] * len(inputs)
    # Windows of similar length batched together keep padding (wasted FLOPs) small.
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i].ids))
    for begin in range(0, len(order), batch_size):
        chunk = order[begin : begin + batch_size]
        width = max(len(inputs[i].ids) for i in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        keep = torch.zeros((len(chunk), width), dtype=torch.bool)
        for row, i in enumerate(chunk):
            n = len(inputs[i].ids)
            ids[row, :n] = torch.tensor(inputs[i].ids, dtype=torch.long)
            mask[row, :n] = 1
            keep[row, :n] = torch.tensor(inputs[i].keep, dtype=torch.bool)
        vectors = forward(ids.to(device), mask.to(device)).float().cpu()
        for row, i in enumerate(chunk):
            per_window[i] = vectors[row][keep[row]].numpy()
    pages: list[list[TokenVectors]] = [[] for _ in range(n_pages)]
    for window, found in zip(inputs, per_window, strict=True):
        assert found is not None
        pages[window.page].append(found)
    return [
        np.ascontiguousarray(np.concatenate(p) if p else np.zeros((0, dim)), dtype=np.float32)
        for p in pages
    ]


def encode_text_pages(
    texts: Sequence[str],
    *,
    tokenizer: Any,
    settings: WindowSettings,
    span: int,
    window: Callable[[list[int], int, int], tuple[list[int], list[bool]]],
    forward: Forward,
    pad_id: int,
    batch_size: int,
    device: str,
    dim: int,
) -> list[EncodedPage]:
    """Pages as a text encoder with ``span`` text tokens per model call reads them:
    windows when ``settings`` ask for them (else the first ``span``), and the counts of
    what was cut. ``window`` builds one window's model ids and kept positions."""
    cap = settings.max_page_tokens if settings.enabled else span
    ids = text_token_ids(tokenizer, texts, cap)
    inputs, counts = window_inputs(ids, span, settings, window)
    vectors = encode_windows(
        inputs,
        len(texts),
        forward=forward,
        pad_id=pad_id,
        batch_size=batch_size,
        device=device,
        dim=dim,
    )
    rows: list[list[int]] = [[] for _ in texts]
    for item in inputs:
        rows[item.page].append(sum(item.keep))
    return [
        EncodedPage(v, total, dropped, _window_rows(r, len(v)))
        for v, (total, dropped), r in zip(vectors, counts, rows, strict=True)
    ]


def _window_rows(rows: list[int], n_vectors: int) -> tuple[int, ...] | None:
    """A page's rows per window, when it has several windows with rows (a window whose
    every token a skiplist dropped holds none, and has no MaxSim of its own)."""
    kept = tuple(r for r in rows if r > 0)
    if len(kept) < 2 or sum(kept) != n_vectors:
        return None
    return kept
