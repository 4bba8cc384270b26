"""Exact MaxSim over host blocks with numpy alone, for a process that has not loaded torch.

Importing torch costs 1.5-3 s of CPU, most of a cold ``latestore search`` on the default
model (docs/cold-start.md). The CPU rerank's torch kernels (:func:`~latestore.index.
maxsim.maxsim_blocks`) are faster per block (torch converts float16 blocks to float32
several times faster than numpy), which pays off in a process that searches many times
or scans a whole store, not in one that searches once. So the scorer
(:mod:`latestore.index.scorers`) takes this path only in a one-off command that has not
loaded torch (:mod:`latestore.torch_use`); an exhaustive scan loads it anyway
(index/threads.py).

The arithmetic is the same: float32 products of each block with every query token, the
max over each page's rows, the sum over each query's tokens. The two paths agree to
float32 rounding (tests/index/test_maxsim_numpy.py), not bit for bit: the matrix
products are different BLAS kernels.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from latestore.index.codec import unpack_int8_rows
from latestore.index.vectors import Block

__all__ = ["CPU_CHUNK_BYTES", "block_tokens", "maxsim_blocks_numpy"]

# A float32 block (tokens x dim) that stays in L2; see latestore.index.maxsim.
CPU_CHUNK_BYTES = 4 << 20

_SCRATCH = threading.local()


def block_tokens(dim: int) -> int:
    """Tokens per block scored at once: a float32 block of about CPU_CHUNK_BYTES."""
    return max(1, CPU_CHUNK_BYTES // (4 * max(1, dim)))


def _block_float32(parts: list[npt.NDArray[np.floating]], rows: int, dim: int) -> np.ndarray:
    if len(parts) == 1 and parts[0].dtype == np.float32:
        return parts[0]
    # One reusable buffer per thread: a fresh multi-megabyte array page-faults on first touch.
    buffer: np.ndarray | None = getattr(_SCRATCH, "tokens", None)
    if buffer is None or buffer.size < rows * dim:
        buffer = np.empty(max(rows * dim, CPU_CHUNK_BYTES // 4), dtype=np.float32)
        _SCRATCH.tokens = buffer
    block = buffer[: rows * dim].reshape(rows, dim)
    start = 0
    for part in parts:
        dest = block[start : start + len(part)]
        if part.dtype == np.uint8:  # packed int8 rows: dequantised into the block
            codes, scales = unpack_int8_rows(np.asarray(part, dtype=np.uint8), dim)
            np.multiply(codes, scales[:, None], out=dest)
        else:
            np.copyto(dest, part, casting="unsafe")
        start += len(part)
    return block


def maxsim_blocks_numpy(
    queries: Sequence[npt.NDArray[np.floating]], blocks: Iterable[Block]
) -> npt.NDArray[np.float32]:
    """MaxSim of several queries against pages given block by block:
    ``(n_queries, n_pages)`` in block order, as :func:`latestore.index.maxsim.maxsim_blocks`."""
    stacked = np.ascontiguousarray(
        np.concatenate([np.asarray(q, dtype=np.float32) for q in queries])
    )
    query_starts = np.concatenate([[0], np.cumsum([len(q) for q in queries])[:-1]])
    columns: list[npt.NDArray[np.float32]] = []
    for block in blocks:
        lengths = np.asarray(block.lengths, dtype=np.int64)
        rows = int(lengths.sum())
        tokens = _block_float32(block.parts, rows, stacked.shape[1])
        product = tokens @ stacked.T  # (block tokens, query tokens), float32
        page_starts = np.cumsum(lengths) - lengths
        best = np.maximum.reduceat(product, page_starts, axis=0)  # (pages, query tokens)
        columns.append(np.add.reduceat(best, query_starts, axis=1).T.astype(np.float32))
    if not columns:
        return np.zeros((len(queries), 0), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(columns, axis=1))
