"""Device and dtype choice shared by every model encoder (one policy, one place)."""

from __future__ import annotations

import torch

from latestore.errors import EncoderError


def pick_device(requested: str | None = None) -> str:
    """``requested`` if given, else CUDA when present, else CPU."""
    if requested:
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(device: str, requested: torch.dtype | str | None = None) -> torch.dtype:
    """What was asked for; else bf16 on CUDA (fp16 where bf16 is unsupported), fp32 elsewhere.

    bf16 is what the published checkpoints were trained in; CPUs get fp32 because their
    half-precision matmuls are slow and the store's reference scores are fp32.
    """
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
