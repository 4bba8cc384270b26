"""Shared helpers for the fused-kernel tests: the device they run on and random pages.

On a machine without CUDA the kernels run in Triton's interpreter on CPU tensors
(tests/conftest.py sets TRITON_INTERPRET=1); with CUDA they run compiled on the GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

triton = pytest.importorskip("triton", reason="the fused MaxSim kernel needs triton")

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def addresses(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(starts, lengths)`` of pages packed back to back, on DEVICE."""
    n = torch.tensor(lengths, dtype=torch.int64)
    return (torch.cumsum(n, 0) - n).to(DEVICE), n.to(DEVICE)
