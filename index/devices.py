"""Which device a new index ranks on, decided without importing torch where no GPU exists.

Importing torch costs seconds; commands that never score (``latestore info``,
``reindex``) should not pay it on a machine that has no GPU. A CUDA or ROCm device
always shows as a device node, so their absence answers the question for free.
"""

from __future__ import annotations

import os
import sys

# NVIDIA's control and device nodes, AMD's ROCm compute node, WSL's GPU bridge.
_GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg", "/proc/driver/nvidia")


def gpu_nodes_present() -> bool:
    """Is there a GPU device node? Without one, torch cannot see a GPU."""
    return any(os.path.exists(node) for node in _GPU_NODES)


def default_device() -> str:
    """``"cuda"`` when torch sees a GPU, else ``"cpu"``; torch is imported only if one may exist."""
    if "torch" not in sys.modules and not gpu_nodes_present():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
