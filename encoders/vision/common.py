"""What every vision-document (ColVision) encoder shares.

Loading is strict: a checkpoint whose weight names do not match the model class (a
renamed projection, a backbone saved under another prefix) is refused with
:class:`~latestore.errors.EncoderError` instead of being silently initialised at random,
which would produce plausible-looking but meaningless vectors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latestore.encoders.base import PageContent, TokenVectors

# Re-exported: the families import their checkpoint and device helpers from here.
from latestore.encoders.checkpoint import (
    architectures,
    read_config,
    weight_files,
    weights_digest,
)
from latestore.encoders.device import pick_device, pick_dtype
from latestore.errors import EncoderError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from PIL.Image import Image

# Generation heads some checkpoints still carry; retrieval never uses them.
__all__ = [
    "architectures",
    "check_key_sets",
    "check_loading_info",
    "in_batches",
    "load_strict",
    "page_images",
    "pick_dtype",
    "quiet_transformers",
    "read_config",
    "resolve_device",
    "split_by_mask",
    "weight_files",
    "weights_digest",
]

IGNORABLE_UNEXPECTED = re.compile(r"(^|\.)lm_head\.")


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report: our own check raises with the same facts."""
    from transformers.utils import logging

    before = logging.get_verbosity()
    logging.set_verbosity(40)  # logging.ERROR
    try:
        yield
    finally:
        logging.set_verbosity(before)


def check_loading_info(model_dir: Path, info: dict[str, Any]) -> None:
    """Refuse a checkpoint whose weights did not all land in the model (and vice versa)."""
    missing = sorted(info.get("missing_keys") or [])
    unexpected = sorted(
        k for k in info.get("unexpected_keys") or [] if not IGNORABLE_UNEXPECTED.search(k)
    )
    mismatched = sorted(str(k) for k in info.get("mismatched_keys") or [])
    problems = []
    if missing:
        problems.append(f"weights missing from the checkpoint: {_preview(missing)}")
    if unexpected:
        problems.append(f"checkpoint weights the model does not use: {_preview(unexpected)}")
    if mismatched:
        problems.append(f"weights with the wrong shape: {_preview(mismatched)}")
    if problems:
        raise EncoderError(
            f"{model_dir} does not match its declared architecture ("
            + "; ".join(problems)
            + "); refusing to run with randomly initialised weights"
        )


def build_for_weights(model_class: Any, config: Any, dtype: torch.dtype) -> Any:
    """An empty ``model_class`` in ``dtype``, for a checkpoint whose every weight is then
    loaded (the callers check the key sets): random initialisation is skipped, since
    every value is overwritten. For a 2B model that saves a float32 copy and seconds of
    random numbers on the CPU."""
    import importlib

    try:
        initialization = importlib.import_module("transformers.initialization")
    except ImportError:  # transformers 4.x kept it in modeling_utils
        initialization = importlib.import_module("transformers.modeling_utils")
    with quiet_transformers(), initialization.no_init_weights():
        return model_class._from_config(config, attn_implementation="sdpa", dtype=dtype)


def check_key_sets(model_dir: Path, expected: Iterable[str], found: Iterable[str]) -> None:
    """The explicit form of :func:`check_loading_info` for hand-mapped checkpoints."""
    want, have = set(expected), set(found)
    check_loading_info(model_dir, {"missing_keys": want - have, "unexpected_keys": have - want})


def load_strict(model_class: Any, model_dir: Path, device: str, dtype: torch.dtype) -> Any:
    """``from_pretrained`` that raises EncoderError unless every weight was loaded."""
    try:
        with quiet_transformers():
            model, info = model_class.from_pretrained(
                str(model_dir), dtype=dtype, output_loading_info=True
            )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise EncoderError(f"cannot load {model_dir}: {exc}") from exc
    check_loading_info(model_dir, info)
    return model.to(device).eval()


def _preview(keys: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def page_images(pages: Sequence[PageContent], family: str) -> list[Image]:
    images = []
    for row, page in enumerate(pages):
        if page.image is None:
            raise EncoderError(
                f"{family} encodes page images; page {row} has none (render it first)"
            )
        images.append(page.image.convert("RGB"))
    return images


def split_by_mask(embeddings: torch.Tensor, mask: torch.Tensor) -> list[TokenVectors]:
    """One float32 (n_tokens, dim) array per row, padding dropped (either padding side)."""
    out: list[TokenVectors] = []
    keep = mask.bool()
    for row in range(embeddings.shape[0]):
        vectors = embeddings[row][keep[row]].float()
        vectors = torch.nn.functional.normalize(vectors, dim=-1)
        out.append(np.ascontiguousarray(vectors.cpu().numpy(), dtype=np.float32))
    return out


def in_batches(
    items: Sequence[Any],
    batch_size: int,
    encode: Callable[[list[Any]], list[TokenVectors]],
) -> list[TokenVectors]:
    out: list[TokenVectors] = []
    with torch.inference_mode():
        for start in range(0, len(items), batch_size):
            out.extend(encode(list(items[start : start + batch_size])))
    return out


def resolve_device(device: str | None) -> str:
    return pick_device(device)
