"""Where each stored token of a page sits: a character span of its text, or a patch cell.

Positions are derived when a page is explained, not recorded at ingest: the text is
tokenised again with the encoder's own tokenizer and window builder (the same calls
that produced the stored vectors), and an image goes through the encoder's own
processor, which says how many patch tokens it makes and on which grid. The result is
trusted only when it accounts for exactly the stored number of tokens; otherwise (token
pooling, another encoder's vectors, caller-given vectors) the positions are unknown and
the explanation says so. No schema change, and pages stored before this code work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from latestore.encoders.windows import plan_windows

Span = tuple[int, int]


@dataclass(frozen=True)
class TextPositions:
    """``spans[i]``: the characters of the page text that stored token ``i`` read
    (None for special tokens and markers)."""

    spans: list[Span | None]


@dataclass(frozen=True)
class GridPositions:
    """``cells[i]``: the (row, column) patch of stored token ``i`` on a ``rows x cols``
    grid over the whole page image (None for the prompt's text tokens)."""

    rows: int
    cols: int
    cells: list[tuple[int, int] | None]


@dataclass(frozen=True)
class Unknown:
    reason: str


Positions = TextPositions | GridPositions | Unknown


def text_positions(encoder: Any, text: str, n_stored: int) -> Positions:
    """Character spans of a text page's stored tokens, as ``encoder`` windows the text."""
    tokenizer = getattr(encoder, "_tokenizer", None) or getattr(encoder, "tokenizer", None)
    build = getattr(encoder, "_window", None)
    span = getattr(encoder, "_span", None)
    settings = getattr(encoder, "windowing", None)
    if tokenizer is None or build is None or not isinstance(span, int) or settings is None:
        return Unknown(f"encoder {getattr(encoder, 'name', '?')!r} does not expose its tokenizer")
    if not getattr(tokenizer, "is_fast", False):
        return Unknown("the encoder's tokenizer gives no character offsets")
    encoded = tokenizer(
        text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False
    )
    ids: list[int] = list(encoded["input_ids"])
    offsets: list[Span] = [(int(s), int(e)) for s, e in encoded["offset_mapping"]]
    if settings.enabled:
        ids = ids[: settings.max_page_tokens]
        plan = plan_windows(len(ids), span, settings.stride)
    else:
        plan = plan_windows(min(len(ids), span), span, span)
    spans: list[Span | None] = []
    for window in plan:
        window_ids = ids[window.start : window.end]
        own = (window.own_start - window.start, window.own_end - window.start)
        model_ids, keep = build(window_ids, *own)
        first = _find_run(model_ids, window_ids)
        if first is None:
            return Unknown("the encoder rewrites the text tokens; positions unknown")
        for position, kept in enumerate(keep):
            if not kept:
                continue
            j = position - first
            spans.append(offsets[window.start + j] if 0 <= j < len(window_ids) else None)
    if len(spans) != n_stored:
        return Unknown(
            f"the page has {n_stored} stored tokens but its text makes {len(spans)} "
            "(encoded with other settings, pooled, or given as vectors)"
        )
    return TextPositions(spans)


def _find_run(haystack: list[int], needle: list[int]) -> int | None:
    if not needle:
        return 0
    for start in range(len(haystack) - len(needle) + 1):
        if haystack[start : start + len(needle)] == needle:
            return start
    return None


def image_positions(encoder: Any, image: Any, n_stored: int) -> Positions:
    """Patch cells of an image page's stored tokens, from the encoder's own processor.

    ColPali resizes every page to a square of ``image_seq_length`` patches (in
    colpali-engine's layout too, whose encoder gives its page prompt's ids); the Qwen-VL
    families (ColQwen2 to ColQwen3.5) keep the aspect ratio and merge ``merge_size``-square
    patch blocks into one token, on the grid ``image_grid_thw`` reports (their encoders in
    colpali-engine's layout say so through ``page_layout``). All write the image tokens
    row-major.
    """
    family = getattr(encoder, "family", None)
    layout = getattr(encoder, "page_layout", None)
    if callable(layout):  # the Qwen-VL families in colpali-engine's layout (ColQwen2 to 3.5)
        kept_ids, image_token, rows, cols = layout(image)
        return _grid(kept_ids, image_token, rows, cols, n_stored)
    if family == "colpali-engine":  # colpali-engine's layout: one square, the same prompt
        kept_ids = encoder.page_token_ids()
        image_token = int(encoder.image_token_id)
        rows = cols = round(sum(1 for i in kept_ids if i == image_token) ** 0.5)
        return _grid(kept_ids, image_token, rows, cols, n_stored)
    processor = getattr(encoder, "_processor", None)
    if processor is None or family not in ("colpali", "colqwen2"):
        return Unknown(f"no patch grid is known for encoder {getattr(encoder, 'name', '?')!r}")
    batch = processor.process_images(images=[image])
    input_ids = [int(i) for i in batch["input_ids"][0]]
    mask = [int(m) for m in batch["attention_mask"][0]]
    image_token = _image_token_id(processor)
    kept_ids = [i for i, m in zip(input_ids, mask, strict=True) if m]
    if family == "colqwen2":
        _, height, width = (int(v) for v in batch["image_grid_thw"][0])
        merge = int(processor.image_processor.merge_size)
        rows, cols = height // merge, width // merge
    else:
        rows = cols = round(sum(1 for i in kept_ids if i == image_token) ** 0.5)
    return _grid(kept_ids, image_token, rows, cols, n_stored)


def reads_page_images(encoder: Any) -> bool:
    """Does ``encoder`` encode a page from its image (so its tokens are patches)?"""
    return (
        getattr(encoder, "_processor", None) is not None
        or hasattr(encoder, "page_token_ids")
        or hasattr(encoder, "page_layout")
    )


def _grid(kept_ids: list[int], image_token: int, rows: int, cols: int, n_stored: int) -> Positions:
    """Row-major patch cells for the image tokens of ``kept_ids``; text tokens get none."""
    n_image = sum(1 for i in kept_ids if i == image_token)
    if n_image == 0 or rows * cols != n_image or len(kept_ids) != n_stored:
        return Unknown(
            f"the page has {n_stored} stored tokens but its image makes {len(kept_ids)} "
            f"({n_image} patches)"
        )
    cells: list[tuple[int, int] | None] = []
    patch = 0
    for token in kept_ids:
        if token == image_token:
            cells.append(divmod(patch, cols))
            patch += 1
        else:
            cells.append(None)
    return GridPositions(rows, cols, cells)


def _image_token_id(processor: Any) -> int:
    token_id = getattr(processor, "image_token_id", None)
    if isinstance(token_id, int):
        return token_id
    token = getattr(processor, "image_token", "<image>")
    return int(processor.tokenizer.convert_tokens_to_ids(token))
