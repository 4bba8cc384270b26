"""Device choice shared by the model encoders."""

from __future__ import annotations

import torch


def pick_device(requested: str | None = None) -> str:
    """``requested`` if given, else CUDA when present, else CPU."""
    if requested:
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"
