"""MaxSim rerank throughput on fixed candidate sets (ColPali-like and text-like)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.ceilings import best_of
from latestore.index.maxsim import maxsim_packed

CASES = [
    # name, pages, tokens per page, dim, query tokens
    ("colpali-like 1000x1024x128", 1000, 1024, 128, 32),
    ("text-like 5000x256x384", 5000, 256, 384, 32),
]


def _unit(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    v = rng.standard_normal(shape, dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def run(device: str, dtypes: tuple[str, ...] = ("float16", "float32")) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    rows = []
    for name, pages, length, dim, q in CASES:
        base = _unit(rng, (pages * length, dim))
        query = _unit(rng, (q, dim))
        lengths = np.full(pages, length, dtype=np.int64)
        for dtype in dtypes:
            tokens: Any = base.astype(dtype)
            if device == "cuda":
                tokens = torch.from_numpy(tokens).cuda()  # resident, as in the store
            seconds = best_of(lambda t=tokens, qv=query, ls=lengths: maxsim_packed(qv, t, ls))
            n_bytes = pages * length * dim * np.dtype(dtype).itemsize
            flops = 2.0 * q * pages * length * dim
            rows.append(
                {
                    "case": name,
                    "device": device,
                    "dtype": dtype,
                    "ms": seconds * 1e3,
                    "bytes": n_bytes,
                    "flops": flops,
                    "gbps": n_bytes / seconds / 1e9,
                    "gflops": flops / seconds / 1e9,
                }
            )
            del tokens
        del base
    return rows
