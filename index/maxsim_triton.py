"""Fused MaxSim in Triton: page tiles are scored against query blocks in registers.

One program scores one *item* (a page, addressed by its first row and length in the
resident packed matrix) against one block of query rows. The similarity matrix never
leaves the chip: each ``(query rows x page tokens)`` tile is reduced to a running
per-query-token maximum as soon as it is computed, so the kernel reads each page's
bytes once from HBM and writes one float per (query, page).

Two launch forms share the kernel:

* **shared**: every query against the same pages. Programs for the same page have
  adjacent ids, so the groups of query rows that re-read a page tile hit L2.
* **pairs**: a list of (query, page) items, each query against its own candidates.

Precision. Page tiles are multiplied on tensor cores in their stored 16-bit form
(int8 codes are exact in float16, and their per-token scale is applied to the float32
products). The float32 query is split into a 16-bit high part and a scaled low
part, ``q = hi + lo / 2**11``, and both are multiplied with float32 accumulation: a
float16 page value times either part is exact in float32, so scores match a float32
computation to about 1e-7 relative instead of the 1e-3 of a plain half-precision
product. bfloat16 tiles are converted to float16 first, which is exact for the
normalised vectors late-interaction models emit (any |x| <= 65504 keeps its 8
significant bits). float32 pages use IEEE float32 products.

All row addresses are 64-bit: a store may hold more than 2**31 elements.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

try:  # triton ships with CUDA builds of torch; CPU machines may lack it
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised on machines without triton
    triton = None
    tl = None

KIND_HALF, KIND_BF16, KIND_INT8, KIND_FP32 = 0, 1, 2, 3
_SUPPORTED = {torch.float16: KIND_HALF, torch.bfloat16: KIND_BF16, torch.int8: KIND_INT8}
_SUPPORTED[torch.float32] = KIND_FP32


def available() -> bool:
    """Can the fused kernel run here (triton installed)?"""
    return triton is not None


def storage_kind(dtype: torch.dtype) -> int:
    try:
        return _SUPPORTED[dtype]
    except KeyError:
        raise TypeError(f"MaxSim kernel cannot read {dtype} pages") from None


if triton is not None:
    # Triton reads the parameters' annotations itself (constexpr): only those are typed.
    @triton.jit  # type: ignore[untyped-decorator]
    def _maxsim_kernel(  # type: ignore[no-untyped-def]
        q_hi_ptr,
        q_lo_ptr,
        pages_ptr,
        scales_ptr,
        starts_ptr,
        lengths_ptr,
        query_of_ptr,
        out_ptr,
        n_items,
        n_groups,
        row_stride,
        low_scale,
        D: tl.constexpr,
        D_PAD: tl.constexpr,
        LQ: tl.constexpr,
        BLOCK_Q: tl.constexpr,
        SEG: tl.constexpr,
        BLOCK_T: tl.constexpr,
        BLOCK_D: tl.constexpr,
        KIND: tl.constexpr,
        PAIRS: tl.constexpr,
        SPLIT: tl.constexpr,
    ):
        pid = tl.program_id(0).to(tl.int64)
        group = pid % n_groups
        item = pid // n_groups
        start = tl.load(starts_ptr + item).to(tl.int64)
        length = tl.load(lengths_ptr + item).to(tl.int64)
        if PAIRS:
            q_row0 = tl.load(query_of_ptr + item).to(tl.int64) * LQ + group * BLOCK_Q
        else:
            q_row0 = group * BLOCK_Q
        offs_q = tl.arange(0, BLOCK_Q)
        offs_t = tl.arange(0, BLOCK_T)
        offs_d = tl.arange(0, BLOCK_D)
        # Products are laid out (page tokens x query rows): the page tile is the MMA's
        # M side, 64 or 128 rows, which Hopper's warpgroup MMA needs, even when a
        # single short query is scored.
        q_cols = (q_row0 + offs_q).to(tl.int64) * D_PAD
        if D_PAD == BLOCK_D:  # the whole query block fits one step: load it once
            q_hi = tl.load(q_hi_ptr + q_cols[None, :] + offs_d[:, None])
            if SPLIT:
                q_lo = tl.load(q_lo_ptr + q_cols[None, :] + offs_d[:, None])
        best = tl.full((BLOCK_Q,), float("-inf"), tl.float32)
        for t0 in range(0, length, BLOCK_T):
            in_page = (t0 + offs_t) < length
            rows = (start + t0 + offs_t).to(tl.int64) * row_stride
            acc = tl.zeros((BLOCK_T, BLOCK_Q), dtype=tl.float32)
            if SPLIT:
                low = tl.zeros((BLOCK_T, BLOCK_Q), dtype=tl.float32)
            for d0 in tl.static_range(0, D_PAD, BLOCK_D):
                cols = d0 + offs_d
                tile_mask = in_page[:, None] & (cols < D)[None, :]
                tile = tl.load(pages_ptr + rows[:, None] + cols[None, :], mask=tile_mask, other=0)
                if D_PAD != BLOCK_D:
                    q_hi = tl.load(q_hi_ptr + q_cols[None, :] + cols[:, None])
                    if SPLIT:
                        q_lo = tl.load(q_lo_ptr + q_cols[None, :] + cols[:, None])
                if KIND == 3:  # float32 pages: IEEE products
                    acc = tl.dot(tile, q_hi, acc, input_precision="ieee")
                else:
                    if KIND != 0:  # int8 codes and normalised bfloat16 are exact in float16
                        tile = tile.to(tl.float16)
                    acc = tl.dot(tile, q_hi, acc)
                    if SPLIT:
                        low = tl.dot(tile, q_lo, low)
            if SPLIT:
                acc = acc + low * low_scale
            if KIND == 2:
                scale = tl.load(scales_ptr + start + t0 + offs_t, mask=in_page, other=0.0)
                acc = acc * scale[:, None]
            acc = tl.where(in_page[:, None], acc, float("-inf"))
            best = tl.maximum(best, tl.max(acc, axis=0))
        # Zero-padded query rows score 0 against every token, so they add nothing here.
        if SEG == BLOCK_Q:
            tl.store(out_ptr + group * n_items + item, tl.sum(best, axis=0))
        else:
            per_query = tl.sum(tl.reshape(best, (BLOCK_Q // SEG, SEG)), axis=1)
            seg_rows = group * (BLOCK_Q // SEG) + tl.arange(0, BLOCK_Q // SEG)
            tl.store(out_ptr + seg_rows.to(tl.int64) * n_items + item, per_query)


@dataclass(frozen=True)
class PackedQueries:
    """Queries padded to ``(n_queries, LQ, D_PAD)`` and split for the kernel."""

    hi: torch.Tensor
    lo: torch.Tensor  # unused (same as hi) unless split
    n_queries: int
    lq: int  # padded tokens per query, a power of two >= 16
    d_pad: int
    low_scale: float
    # Queries are scaled by a power of two into [-1, 1] (exact, and MaxSim is linear in
    # the query), so float16 neither overflows nor loses bits to subnormals; results
    # are multiplied back by ``unscale``.
    unscale: float
    split: bool  # exact (hi + lo products) or fast (one float16 product)


@dataclass(frozen=True)
class Tuning:
    """Launch shape: page tokens per tile, warps per program, pipeline stages."""

    block_t: int
    num_warps: int
    num_stages: int


def default_tuning(mean_length: float, block_q: int) -> Tuning:
    """Short pages waste less of a smaller tile; wide query blocks want more warps."""
    block_t = 32 if mean_length <= 48 else 64
    return Tuning(block_t, 8 if block_q * block_t >= 128 * 64 else 4, 3)


def _next_pow2(n: int, floor: int = 16) -> int:
    return max(floor, 1 << max(0, (n - 1).bit_length()))


def _block_d(dim: int) -> int:
    for block in (128, 64, 32, 16):
        if dim % block == 0:
            return block
    return 64


def query_bytes(n_queries: int, max_tokens: int, dim: int) -> int:
    """Device bytes the padded, split queries take (for budgeting)."""
    d_pad = -(-dim // _block_d(dim)) * _block_d(dim)
    return n_queries * _next_pow2(max_tokens) * d_pad * 8


def pack_queries(
    queries: Sequence[npt.NDArray[np.floating] | torch.Tensor],
    kind: int,
    device: torch.device,
    *,
    exact: bool = True,
) -> PackedQueries:
    """Pad float32 queries to one power-of-two length and split them into hi + lo parts.

    Padding happens on the host and the batch moves in one copy. The batch is padded
    with zero queries to whole blocks of query rows, so the shared form never reads
    past it. ``exact=False`` skips the low part: half the tensor-core work, at
    float16 query precision (about 1e-4 relative on scores).
    """
    host = [
        q.detach().to("cpu", torch.float32).numpy() if isinstance(q, torch.Tensor) else q
        for q in queries
    ]
    dim = int(host[0].shape[1])
    lq = _next_pow2(max(int(q.shape[0]) for q in host))
    block = _block_d(dim)
    d_pad = -(-dim // block) * block
    per_block = max(1, _blocks(lq, len(host), False)[0] // lq)
    n = -(-len(host) // per_block) * per_block
    padded_host = np.zeros((n, lq, d_pad), dtype=np.float32)
    for i, q in enumerate(host):
        padded_host[i, : q.shape[0], :dim] = q
    largest = float(np.abs(padded_host).max()) if padded_host.size else 0.0
    exponent = 0
    if kind != KIND_FP32 and largest > 0 and math.isfinite(largest):
        exponent = math.frexp(largest)[1]
        padded_host *= np.float32(2.0**-exponent)
    padded = torch.from_numpy(padded_host).to(device)
    if kind == KIND_FP32:
        return PackedQueries(padded, padded, len(host), lq, d_pad, 0.0, 1.0, False)
    shift = 2.0**11  # float16 keeps 11 significant bits: lo carries the next 11
    hi = padded.to(torch.float16)
    lo = ((padded - hi.to(torch.float32)) * shift).to(torch.float16) if exact else hi
    return PackedQueries(hi, lo, len(host), lq, d_pad, 1.0 / shift, 2.0**exponent, exact)


def _blocks(lq: int, n_queries: int, pairs: bool) -> tuple[int, int]:
    """``(BLOCK_Q, SEG)``: query rows per program and rows summed into one output."""
    # Shared pages: several whole queries per program cut L2 re-reads of each tile.
    block_q = min(lq, 128) if pairs else min(128, max(lq, _next_pow2(n_queries * lq)))
    return block_q, min(lq, block_q)


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
    if triton is None:
        raise RuntimeError("the fused MaxSim kernel needs triton (pip install 'latestore[gpu]')")
    kind = storage_kind(pages.dtype)
    if kind == KIND_INT8 and scales is None:
        raise ValueError("int8 pages need their per-token scales")
    if pages.stride(1) != 1:
        raise ValueError("page rows must be contiguous")
    n_items = int(starts.shape[0])
    pairs = query_of is not None
    block_q, seg = _blocks(packed.lq, packed.n_queries, pairs)
    if pairs:
        n_groups = packed.lq // block_q
        out_rows = n_groups
    else:
        n_groups = -(-packed.n_queries * packed.lq // block_q)
        out_rows = n_groups * (block_q // seg)
    out = torch.empty((out_rows, n_items), dtype=torch.float32, device=pages.device)
    if n_items == 0:
        return out
    if tuning is None:
        if mean_length is None:  # one device->host read; callers that know pass it
            mean_length = float(lengths.float().mean())
        tuning = default_tuning(mean_length, block_q)
    dummy = starts  # unused pointer arguments still need a tensor
    _maxsim_kernel[(n_items * n_groups,)](
        packed.hi,
        packed.lo,
        pages,
        scales if scales is not None else dummy,
        starts,
        lengths,
        query_of if query_of is not None else dummy,
        out,
        n_items,
        n_groups,
        pages.stride(0),
        packed.low_scale,
        D=int(pages.shape[1]),
        D_PAD=packed.d_pad,
        LQ=packed.lq,
        BLOCK_Q=block_q,
        SEG=seg,
        BLOCK_T=tuning.block_t,
        BLOCK_D=_block_d(int(pages.shape[1])),
        KIND=kind,
        PAIRS=pairs,
        SPLIT=packed.split,
        num_warps=tuning.num_warps,
        num_stages=tuning.num_stages,
    )
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
    seg = _blocks(packed.lq, packed.n_queries, False)[1]
    per_query = packed.lq // seg
    rows = out.shape[0] // per_query
    scores = out.view(rows, per_query, n_items)
    if per_query > 1:  # long queries: sum the partial blocks, in a fixed order
        summed = scores.sum(dim=1)[: packed.n_queries]
    else:
        summed = scores[:, 0][: packed.n_queries]
    return summed * packed.unscale if packed.unscale != 1.0 else summed


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
    summed = out.sum(dim=0) if out.shape[0] > 1 else out[0]
    return summed * packed.unscale if packed.unscale != 1.0 else summed
