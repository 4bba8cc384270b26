"""Launching the fused MaxSim kernel: query packing and launch geometry.

``maxsim_shared`` scores every query of a batch against the same pages,
``maxsim_pairs`` each query against its own pages. Both take pages by address (first
row and length in one resident matrix), so nothing is gathered or copied. The launch
shape is chosen in maxsim_tuning.py.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import torch

from latestore.index import maxsim_triton
from latestore.index.maxsim_tuning import (
    KIND_BF16,
    KIND_FP32,
    KIND_HALF,
    KIND_INT8,
    ShapeKey,
    Tuning,
    autotune_enabled,
    choose,
    default_tuning,
    dim_block,
    packed_dim,
    run_fitting,
)

if maxsim_triton.AVAILABLE:
    from latestore.index.maxsim_triton import maxsim_kernel

log = logging.getLogger(__name__)

_KINDS = {torch.float16: KIND_HALF, torch.bfloat16: KIND_BF16, torch.int8: KIND_INT8}
_KINDS[torch.float32] = KIND_FP32


def available() -> bool:
    """Can the fused kernel run here (triton installed)?"""
    return maxsim_triton.AVAILABLE


def storage_kind(dtype: torch.dtype) -> int:
    try:
        return _KINDS[dtype]
    except KeyError:
        raise TypeError(f"MaxSim kernel cannot read {dtype} pages") from None


@dataclass(frozen=True)
class PackedQueries:
    """float32 queries zero-padded to ``(n_queries, LQ, D_PAD)`` on the device."""

    rows: torch.Tensor
    n_queries: int
    lq: int  # padded tokens per query, a power of two >= 16
    d_pad: int
    split: bool  # exact (hi + lo products) or fast (one float16 product)

    @cached_property
    def halves(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The split the kernel otherwise makes per program, made once (``presplit``).

        Each row is scaled by a power of two into [1, 2) (exact), then cut into a
        float16 high part and a float16 low part carrying the next 11 bits; the kernel
        multiplies both and scales each row's result back by its ``power``. Made on
        first use only, so searches that never run a pre-split shape never pay for it.
        """
        top = self.rows.abs().amax(dim=2)
        power = (top.view(torch.int32) & 0x7F800000).view(torch.float32)
        power = torch.where(power > 0.0, power, torch.ones_like(power))
        scaled = self.rows / power[..., None]
        hi = scaled.to(torch.float16)
        lo = ((scaled - hi.float()) * 2048.0).to(torch.float16) if self.split else hi
        return hi.contiguous(), lo.contiguous(), power.contiguous()


def _next_pow2(n: int, floor: int = 16) -> int:
    return max(floor, 1 << max(0, (n - 1).bit_length()))


def query_bytes(n_queries: int, max_tokens: int, dim: int) -> int:
    """Device bytes a padded batch of queries takes (for budgeting): float32 rows, and
    the float16 halves a pre-split launch shape makes of them (as many bytes again)."""
    return n_queries * _next_pow2(max_tokens) * packed_dim(dim) * 8


def pack_queries(
    queries: Sequence[npt.NDArray[np.floating] | torch.Tensor],
    device: torch.device,
    *,
    exact: bool = True,
) -> PackedQueries:
    """Zero-pad float32 queries to one power-of-two length, in one copy to the device.

    The batch is padded with zero queries to whole blocks of query rows, so the shared
    form never reads past it. ``exact=False`` makes the kernel skip the low part of
    the query: half the tensor-core work, float16 query precision (~1e-4 relative).
    """
    dim = int(queries[0].shape[1])
    lq = _next_pow2(max(int(q.shape[0]) for q in queries))
    d_pad = packed_dim(dim)
    per_block = max(1, _blocks(lq, len(queries), False, d_pad)[0] // lq)
    n = -(-len(queries) // per_block) * per_block
    on_device = all(isinstance(q, torch.Tensor) and q.device == device for q in queries)
    if on_device:
        padded = torch.zeros((n, lq, d_pad), dtype=torch.float32, device=device)
        for i, q in enumerate(queries):
            padded[i, : q.shape[0], :dim] = torch.as_tensor(q)
    else:
        host = np.zeros((n, lq, d_pad), dtype=np.float32)
        for i, q in enumerate(queries):
            values = q.detach().cpu().numpy() if isinstance(q, torch.Tensor) else q
            host[i, : q.shape[0], :dim] = values
        padded = torch.from_numpy(host).to(device)
    return PackedQueries(padded, len(queries), lq, d_pad, exact)


def most_query_rows(d_pad: int) -> int:
    """Query rows one program may hold: 128 up to 128 dims, fewer for wider rows.

    A 128-row block of a 384-dim query spilled 2 KiB of registers per thread and needed
    more shared memory than any shape had, compiled for sm_90 (bench/kernel_resources.py);
    32 rows fit every shape at every dim up to 1,024.
    """
    rows = 128
    while rows > 32 and rows * d_pad > 128 * 128:
        rows //= 2
    return rows


def _blocks(lq: int, n_queries: int, pairs: bool, d_pad: int) -> tuple[int, int]:
    """``(BLOCK_Q, SEG)``: query rows per program and rows summed into one output."""
    most = most_query_rows(d_pad)
    # Shared pages: several whole queries per program cut L2 re-reads of each tile.
    block_q = min(lq, most) if pairs else min(most, max(lq, _next_pow2(n_queries * lq)))
    return block_q, min(lq, block_q)


def shape_key(
    packed: PackedQueries, kind: int, dim: int, pairs: bool, mean_length: float, n_items: int
) -> ShapeKey:
    """The autotuner's key for a launch."""
    block_q, seg = _blocks(packed.lq, packed.n_queries, pairs, packed.d_pad)
    n_groups = launch_groups(packed, pairs)[0]
    return ShapeKey(
        kind,
        dim,
        block_q,
        seg,
        pairs,
        packed.split,
        _next_pow2(max(1, round(mean_length)), 1),
        max(0, int(math.log(max(1, n_items * n_groups), 8))),
    )


def launch_groups(packed: PackedQueries, pairs: bool) -> tuple[int, int]:
    """``(query groups per item, output rows)`` of a launch."""
    block_q, seg = _blocks(packed.lq, packed.n_queries, pairs, packed.d_pad)
    if pairs:
        return packed.lq // block_q, packed.lq // block_q
    n_groups = -(-packed.n_queries * packed.lq // block_q)
    return n_groups, n_groups * (block_q // seg)


def shared_output_rows(packed: PackedQueries) -> int:
    """float32 values per page that :func:`maxsim_shared` writes (for budgeting)."""
    return launch_groups(packed, False)[1]


def kernel_constants(
    packed: PackedQueries, dim: int, kind: int, pairs: bool, shape: Tuning
) -> dict[str, int | bool]:
    """The kernel's compile-time parameters for one launch (also used to compile it
    ahead of time for a GPU this machine lacks: bench/kernel_resources.py)."""
    block_q, seg = _blocks(packed.lq, packed.n_queries, pairs, packed.d_pad)
    return {
        "D": dim,
        "D_PAD": packed.d_pad,
        "LQ": packed.lq,
        "BLOCK_Q": block_q,
        "SEG": seg,
        "BLOCK_T": shape.block_t,
        "BLOCK_D": dim_block(dim),
        "KIND": kind,
        "PAIRS": pairs,
        "SPLIT": packed.split and kind != KIND_FP32,
        "PRESPLIT": shape.presplit and kind != KIND_FP32,
        "ITEMS": 1 if pairs else shape.items,
        "UNROLL_D": shape.unroll_d,
    }


def _launch(
    packed: PackedQueries,
    pages: torch.Tensor,
    scales: torch.Tensor | None,
    starts: torch.Tensor,
    lengths: torch.Tensor,
    query_of: torch.Tensor | None,
    tuning: Tuning | None,
    mean_length: float | None,
) -> torch.Tensor:
    """Run the kernel; returns ``(rows, n_items)`` partial sums (see callers)."""
    if not maxsim_triton.AVAILABLE:
        raise RuntimeError("the fused MaxSim kernel needs triton (pip install 'latestore[gpu]')")
    kind = storage_kind(pages.dtype)
    if kind == KIND_INT8 and scales is None:
        raise ValueError("int8 pages need their per-token scales")
    if pages.stride(1) != 1:
        raise ValueError("page rows must be contiguous")
    n_items = int(starts.shape[0])
    pairs = query_of is not None
    n_groups, out_rows = launch_groups(packed, pairs)
    out = torch.empty((out_rows, n_items), dtype=torch.float32, device=pages.device)
    if n_items == 0:
        return out
    dim = int(pages.shape[1])

    def run(shape: Tuning) -> None:
        constants = kernel_constants(packed, dim, kind, pairs, shape)
        items = int(constants["ITEMS"])
        # Unused pointers need a tensor: the float32 rows stand in.
        hi, lo, power = packed.halves if constants["PRESPLIT"] else (packed.rows,) * 3
        maxsim_kernel[(-(-n_items // items) * n_groups,)](
            packed.rows,
            hi,
            lo,
            power,
            pages,
            scales if scales is not None else starts,  # unused pointers need a tensor
            starts,
            lengths,
            query_of if query_of is not None else starts,
            out,
            n_items,
            n_groups,
            pages.stride(0),
            **constants,
            num_warps=shape.num_warps,
            num_stages=shape.num_stages,
        )

    if tuning is not None:
        run(tuning)
        return out
    if mean_length is None:  # one device->host read; callers that know it pass it
        mean_length = float(lengths.float().mean())
    fallback = default_tuning(mean_length, packed.d_pad)
    if not autotune_enabled(pages.device):
        run_fitting(run, fallback)
        return out
    choose(shape_key(packed, kind, dim, pairs, mean_length, n_items), fallback, run, pages.device)
    return out


def maxsim_shared(
    packed: PackedQueries,
    pages: torch.Tensor,
    starts: torch.Tensor,
    lengths: torch.Tensor,
    scales: torch.Tensor | None = None,
    *,
    tuning: Tuning | None = None,
    mean_length: float | None = None,
) -> torch.Tensor:
    """Every packed query against every item: float32 ``(n_queries, n_items)``.

    ``starts`` (int64) and ``lengths`` address each page's rows in ``pages``; every
    length must be >= 1. ``mean_length`` (page tokens) picks the tile without a
    device read.
    """
    n_items = int(starts.shape[0])
    out = _launch(packed, pages, scales, starts, lengths, None, tuning, mean_length)
    seg = _blocks(packed.lq, packed.n_queries, False, packed.d_pad)[1]
    per_query = packed.lq // seg
    scores = out.view(out.shape[0] // per_query, per_query, n_items)
    if per_query > 1:  # long queries: sum the partial blocks, in a fixed order
        return scores.sum(dim=1)[: packed.n_queries]
    return scores[:, 0][: packed.n_queries]


def maxsim_pairs(
    packed: PackedQueries,
    pages: torch.Tensor,
    query_of: torch.Tensor,
    starts: torch.Tensor,
    lengths: torch.Tensor,
    scales: torch.Tensor | None = None,
    *,
    tuning: Tuning | None = None,
    mean_length: float | None = None,
) -> torch.Tensor:
    """Item ``i`` is query ``query_of[i]`` against the page at ``starts[i]``: ``(n,)``."""
    out = _launch(packed, pages, scales, starts, lengths, query_of, tuning, mean_length)
    return out.sum(dim=0) if out.shape[0] > 1 else out[0]
