"""The machine's own ceilings: memory bandwidth and matrix-product throughput."""

from __future__ import annotations

import platform
import time
from typing import Any

import numpy as np
import torch

from bench.cpu import cpu_model


def best_of(fn: Any, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def cpu_ceilings() -> dict[str, float]:
    src = np.ones(256 * 1024 * 1024 // 4, dtype=np.float32)  # 256 MiB
    dst = np.empty_like(src)
    copy_s = best_of(lambda: np.copyto(dst, src))
    n = 2048
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    mm_s = best_of(lambda: torch.mm(a, b))
    return {
        "cpu_copy_gbps": 2 * src.nbytes / copy_s / 1e9,  # read + write
        "cpu_fp32_gflops": 2 * n**3 / mm_s / 1e9,
    }


def gpu_ceilings() -> dict[str, float]:
    if not torch.cuda.is_available():
        return {}
    src = torch.ones(1024 * 1024 * 1024 // 2, dtype=torch.float16, device="cuda")  # 1 GiB
    dst = torch.empty_like(src)
    copy_s = best_of(lambda: dst.copy_(src), repeats=10)
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16)
    mm_s = best_of(lambda: torch.mm(a, b), repeats=10)
    af, bf = a.float(), b.float()
    mm32_s = best_of(lambda: torch.mm(af, bf), repeats=5)
    return {
        "gpu_copy_gbps": 2 * src.numel() * 2 / copy_s / 1e9,
        "gpu_fp16_gflops": 2 * n**3 / mm_s / 1e9,
        "gpu_fp32_gflops": 2 * n**3 / mm32_s / 1e9,
    }


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if model := cpu_model(""):
        info["cpu"] = model
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
