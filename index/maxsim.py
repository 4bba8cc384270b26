"""Exact MaxSim: for each query token, the best dot product over a page's tokens, summed.

Pages are scored from one packed ``(total_tokens, dim)`` matrix plus per-page lengths,
so a batch of pages of mixed length costs what its real tokens cost: nothing is padded
to the longest page. Products accumulate in float32 whatever the storage dtype.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import torch

from latestore.index.codec import unpack_int8_rows
from latestore.index.maxsim_numpy import CPU_CHUNK_BYTES as _BLOCK_BYTES
from latestore.index.vectors import Block, pack_pages

__all__ = ["maxsim_blocks", "maxsim_many", "maxsim_packed", "maxsim_reference", "pack_pages"]


def _consume_read_only_warning() -> None:
    """Blocks are often views of read-only memory (a mapped vector file or snapshot, a
    SQL blob) that torch only reads, but ``torch.from_numpy`` warns about any read-only
    array, once per process, from the first search that meets one. That warning is
    torch's "warn once" (a C++ static set by its first emission), so emitting it here at
    import, under an ignore filter, spends it: no search prints it, and no warnings
    filter has to be changed per call (``catch_warnings`` is not thread-safe)."""
    read_only = np.zeros(1, dtype=np.float32)
    read_only.flags.writeable = False
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        torch.from_numpy(read_only)


_consume_read_only_warning()

FloatArray = npt.NDArray[np.floating]

# Tokens scored per matmul on GPU, where the chunk only bounds temporary memory.
CHUNK_TOKENS = 65_536
# On CPU the converted float32 block (chunk x dim) must stay in L2: on a 2-core Sapphire
# Rapids, 4 MiB blocks (8k tokens at dim 128) cut the 1000x1024x128 float16 rerank from
# 182 to about 110 ms, because MKL's skinny GEMM runs 1.5x faster on cache-hot operands
# than on ones streamed from DRAM, and the half-to-float copy lands in cache.
CPU_CHUNK_BYTES = _BLOCK_BYTES
# Mean tokens per page from which a block's pages are reduced one by one (see _segment_max).
LONG_PAGES = 64


def maxsim_packed(
    query: FloatArray | torch.Tensor,
    tokens: FloatArray | torch.Tensor,
    lengths: npt.NDArray[np.int64],
    *,
    device: str | torch.device | None = None,
) -> npt.NDArray[np.float32]:
    """MaxSim of one query against packed pages.

    Parameters
    ----------
    query:
        ``(query_tokens, dim)``.
    tokens:
        ``(sum(lengths), dim)`` page tokens, page after page (float16 or float32).
    lengths:
        Tokens per page; every length must be >= 1.

    Returns
    -------
    float32 scores, one per page.

    Examples
    --------
    >>> import numpy as np
    >>> q = np.eye(2, dtype=np.float32)
    >>> pages = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    >>> maxsim_packed(q, pages, np.array([2, 1])).tolist()
    [2.0, 1.0]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n_pages = len(lengths)
    if n_pages == 0:
        return np.zeros(0, dtype=np.float32)
    if int(lengths.min()) < 1:
        raise ValueError("every page needs at least one token")
    target = torch.device(device) if device is not None else _device_of(tokens)
    query_t = torch.as_tensor(query).to(target, torch.float32)
    tokens_t = torch.as_tensor(tokens)
    if target.type == "cuda":
        scores: npt.NDArray[np.float32] = _maxsim_cuda([query_t], tokens_t.to(target), lengths)[0]
        return scores
    return _maxsim_cpu(query_t, tokens_t, lengths)


def _device_of(tokens: FloatArray | torch.Tensor) -> torch.device:
    return tokens.device if isinstance(tokens, torch.Tensor) else torch.device("cpu")


def _chunks(
    lengths: npt.NDArray[np.int64], chunk_tokens: int = CHUNK_TOKENS
) -> list[tuple[int, int]]:
    """Page ranges ``[start, stop)`` whose tokens fill about ``chunk_tokens`` each."""
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    ranges: list[tuple[int, int]] = []
    start = 0
    while start < len(lengths):
        stop = int(np.searchsorted(bounds, bounds[start] + chunk_tokens, side="right")) - 1
        stop = max(stop, start + 1)
        ranges.append((start, min(stop, len(lengths))))
        start = ranges[-1][1]
    return ranges


def _cpu_chunk_tokens(dim: int) -> int:
    return max(1, CPU_CHUNK_BYTES // (4 * max(1, dim)))


_SCRATCH = threading.local()


def _scratch(name: str, rows: int, cols: int) -> torch.Tensor:
    """A reusable float32 ``(rows, cols)`` buffer for this thread.

    Fresh multi-megabyte tensors per chunk come from mmap and page-fault on first
    touch; that, not the arithmetic, made half-to-float conversion cost 3x more.
    """
    buffers: dict[str, torch.Tensor] = _SCRATCH.__dict__.setdefault("buffers", {})
    buffer = buffers.get(name)
    if buffer is None or buffer.numel() < rows * cols:
        buffer = torch.empty(max(rows * cols, CPU_CHUNK_BYTES // 4), dtype=torch.float32)
        buffers[name] = buffer
    return buffer[: rows * cols].view(rows, cols)


def _as_float32_block(tokens: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    if tokens.dtype == torch.float32:
        return tokens[lo:hi]
    block = _scratch("tokens", hi - lo, tokens.shape[1])
    block.copy_(tokens[lo:hi])
    return block


def _maxsim_cpu(
    query: torch.Tensor, tokens: torch.Tensor, lengths: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    scores = np.empty(len(lengths), dtype=np.float32)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    for start, stop in _chunks(lengths, _cpu_chunk_tokens(tokens.shape[1])):
        lo, hi = int(bounds[start]), int(bounds[stop])
        block = _as_float32_block(tokens, lo, hi)
        product = torch.mm(block, query.T, out=_scratch("sims", hi - lo, len(query)))
        chunk_lengths = lengths[start:stop]
        first = int(chunk_lengths[0])
        if (chunk_lengths == first).all():
            # Equal-length pages (every ColPali page): a plain reshape replaces the
            # segmented reduction.
            best = product.view(stop - start, first, -1).amax(dim=1)
        else:
            best = _segment_max(product, chunk_lengths)
        scores[start:stop] = best.sum(dim=1).numpy()
    return scores


def _segment_max(product: torch.Tensor, chunk_lengths: npt.NDArray[np.int64]) -> torch.Tensor:
    """Per-page max over the rows of ``product``: ``(pages, query_tokens)``.

    Each page's rows are laid out in a ``(pages, longest, query_tokens)`` block, short
    pages padded by repeating their last row (which leaves the max unchanged), so one
    strided ``amax`` does the reduction: 2.5x faster than numpy's ``reduceat`` on an
    8k-token chunk of mixed-length pages.
    """
    n_pages, longest = len(chunk_lengths), int(chunk_lengths.max())
    rows, width = product.shape
    starts = np.cumsum(chunk_lengths) - chunk_lengths
    if rows >= LONG_PAGES * n_pages:
        # Long pages (a few dozen per block): one reduction per page reads the product
        # once, where padding would copy all of it first.
        best = _scratch("best", n_pages, width)
        for i, (start, n) in enumerate(zip(starts.tolist(), chunk_lengths.tolist(), strict=True)):
            torch.amax(product[start : start + n], dim=0, out=best[i])
        return best
    if n_pages * longest > 4 * rows:
        # One long page among many short ones: padding would cost more than it saves.
        return torch.from_numpy(np.maximum.reduceat(product.numpy(), starts, axis=0))
    source = starts[:, None] + np.minimum(np.arange(longest), chunk_lengths[:, None] - 1)
    padded = _scratch("padded", n_pages * longest, width)
    torch.index_select(product, 0, torch.from_numpy(source.ravel()), out=padded)
    return padded.view(n_pages, longest, width).amax(dim=1)


def _maxsim_cuda(
    queries: list[torch.Tensor], tokens: torch.Tensor, lengths: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """``(n_queries, n_pages)`` on the GPU: the fused kernel, or torch without triton."""
    from latestore.index import maxsim_launch

    if maxsim_launch.available() and tokens.dtype in (torch.float16, torch.float32):
        device = tokens.device
        lengths_t = torch.from_numpy(lengths).to(device)
        starts = torch.cumsum(lengths_t, 0) - lengths_t
        packed = maxsim_launch.pack_queries(queries, device)
        scores = maxsim_launch.maxsim_shared(
            packed, tokens.contiguous(), starts, lengths_t, mean_length=float(lengths.mean())
        )
        result: npt.NDArray[np.float32] = scores.cpu().numpy()
        return result
    if len(queries) == 1:
        return _maxsim_torch(queries[0].to(tokens.device), tokens, lengths)[None, :]
    stacked = torch.cat(queries).to(tokens.device, torch.float32)
    return _maxsim_many_torch(stacked, [len(q) for q in queries], tokens, lengths)


def _maxsim_torch(
    query: torch.Tensor, tokens: torch.Tensor, lengths: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    out = torch.empty(len(lengths), dtype=torch.float32, device=query.device)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    for start, stop in _chunks(lengths):
        lo, hi = int(bounds[start]), int(bounds[stop])
        sims = torch.mm(tokens[lo:hi].to(torch.float32), query.T)
        segment = torch.as_tensor(lengths[start:stop], device=query.device)
        best = torch.segment_reduce(sims, "max", lengths=segment, axis=0)
        out[start:stop] = best.sum(dim=1)
    return out.cpu().numpy()


def maxsim_reference(query: FloatArray, pages: Sequence[FloatArray]) -> npt.NDArray[np.float64]:
    """Naive float64 MaxSim, page by page: the ground truth the fast paths are tested on."""
    q = np.asarray(query, dtype=np.float64)
    return np.array(
        [(q @ np.asarray(p, dtype=np.float64).T).max(axis=1).sum() for p in pages],
        dtype=np.float64,
    )


def maxsim_many(
    queries: Sequence[FloatArray],
    tokens: FloatArray | torch.Tensor,
    lengths: npt.NDArray[np.int64],
) -> npt.NDArray[np.float32]:
    """MaxSim of several queries against the same packed pages: ``(n_queries, n_pages)``.

    All query tokens go through one matrix product per chunk of pages, which is what
    makes exhaustive evaluation over a whole store affordable on a CPU.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if not queries or len(lengths) == 0:
        return np.zeros((len(queries), len(lengths)), dtype=np.float32)
    tokens_t = torch.as_tensor(tokens)
    if tokens_t.device.type == "cuda":
        return _maxsim_cuda(
            [torch.as_tensor(np.asarray(q, dtype=np.float32)) for q in queries], tokens_t, lengths
        )
    stacked = torch.as_tensor(np.concatenate([np.asarray(q, dtype=np.float32) for q in queries]))
    query_bounds = np.concatenate([[0], np.cumsum([len(q) for q in queries])[:-1]])
    scores = np.empty((len(queries), len(lengths)), dtype=np.float32)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    for start, stop in _chunks(lengths, _cpu_chunk_tokens(tokens_t.shape[1])):
        lo, hi = int(bounds[start]), int(bounds[stop])
        block = _as_float32_block(tokens_t, lo, hi)
        sims = torch.mm(stacked, block.T).numpy()
        best = np.maximum.reduceat(sims, bounds[start:stop] - lo, axis=1)
        scores[:, start:stop] = np.add.reduceat(best, query_bounds, axis=0)
    return scores


def _maxsim_many_torch(
    stacked: torch.Tensor,
    query_lengths: list[int],
    tokens: torch.Tensor,
    lengths: npt.NDArray[np.int64],
) -> npt.NDArray[np.float32]:
    device = stacked.device
    out = torch.empty((len(query_lengths), len(lengths)), dtype=torch.float32, device=device)
    owner = torch.repeat_interleave(
        torch.arange(len(query_lengths), device=device),
        torch.as_tensor(query_lengths, device=device),
    )
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    for start, stop in _chunks(lengths):
        lo, hi = int(bounds[start]), int(bounds[stop])
        sims = torch.mm(tokens[lo:hi].to(torch.float32), stacked.T)  # (chunk tokens, query tokens)
        segment = torch.as_tensor(lengths[start:stop], device=device)
        best = torch.segment_reduce(sims, "max", lengths=segment, axis=0)  # (pages, query tokens)
        summed = torch.zeros((len(query_lengths), stop - start), dtype=torch.float32, device=device)
        summed.index_add_(0, owner, best.T)
        out[:, start:stop] = summed
    result: npt.NDArray[np.float32] = out.cpu().numpy()
    return result


def block_tokens(dim: int) -> int:
    """Tokens per block for :func:`maxsim_blocks`: a float32 block that stays in L2."""
    return _cpu_chunk_tokens(dim)


def maxsim_blocks(
    queries: Sequence[FloatArray], blocks: Iterable[Block]
) -> npt.NDArray[np.float32]:
    """MaxSim of several queries against pages given block by block, where they lie:
    ``(n_queries, n_pages)`` in block order.

    Each block (about :func:`block_tokens` tokens, see ``VectorCache.blocks``) is
    converted to float32 once into a cache-sized scratch buffer (or used as it is when
    it is float32 already) and multiplied with every query token at once; nothing is
    copied per query beyond that one block. Products accumulate in float32.
    """
    stacked = torch.as_tensor(np.concatenate([np.asarray(q, dtype=np.float32) for q in queries]))
    query_bounds = np.concatenate([[0], np.cumsum([len(q) for q in queries])[:-1]])
    columns: list[npt.NDArray[np.float32]] = []
    for block in blocks:
        lengths = block.lengths
        rows = int(lengths.sum())
        tokens = _block_float32(block.parts, rows, stacked.shape[1])
        product = torch.mm(tokens, stacked.T, out=_scratch("sims", rows, len(stacked)))
        first = int(lengths[0])
        if (lengths == first).all():
            best = product.view(len(lengths), first, -1).amax(dim=1)
        else:
            best = _segment_max(product, lengths)
        if len(queries) == 1:
            columns.append(best.sum(dim=1).numpy()[None, :])
        else:
            columns.append(np.add.reduceat(best.numpy(), query_bounds, axis=1).T)
    if not columns:
        return np.zeros((len(queries), 0), dtype=np.float32)
    return np.concatenate(columns, axis=1)


def _block_float32(parts: list[npt.NDArray[np.floating]], rows: int, dim: int) -> torch.Tensor:
    if len(parts) == 1 and parts[0].dtype == np.float32:
        return torch.from_numpy(parts[0])
    block = _scratch("tokens", rows, dim)
    start = 0
    for part in parts:  # torch converts half to float 10x faster than numpy's copyto
        dest = block[start : start + len(part)]
        if part.dtype == np.uint8:  # packed int8 rows: dequantised into the block
            codes, scales = unpack_int8_rows(np.asarray(part, dtype=np.uint8), dim)
            dest.copy_(torch.from_numpy(codes)).mul_(torch.from_numpy(scales)[:, None])
        else:
            dest.copy_(torch.from_numpy(part))
        start += len(part)
    return block
