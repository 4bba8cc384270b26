"""Device and dtype choice shared by every model encoder (one policy, one place)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from latestore.errors import EncoderError

if TYPE_CHECKING:
    import torch


def pick_device(requested: str | None = None) -> str:
    """``requested`` if given, else CUDA when present, else CPU (decided without
    importing torch where no GPU device node exists: see latestore.index.devices)."""
    if requested:
        return requested
    from latestore.index.devices import default_device

    return default_device()


def pick_dtype(device: str, requested: torch.dtype | str | None = None) -> torch.dtype:
    """What was asked for; else bf16 on CUDA (fp16 where bf16 is unsupported), fp32 elsewhere.

    bf16 is what the published checkpoints were trained in; CPUs get fp32 because their
    half-precision matmuls are slow and the store's reference scores are fp32.
    """
    import torch

    if isinstance(requested, torch.dtype):
        return requested
    if requested not in (None, "auto"):
        dtype = getattr(torch, str(requested), None)
        if not isinstance(dtype, torch.dtype):
            raise EncoderError(f"unknown dtype {requested!r}")
        return dtype
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32
