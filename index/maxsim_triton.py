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
from dataclasses import dataclass

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
        q_rows = (q_row0 + offs_q).to(tl.int64) * D_PAD
        best = tl.full((BLOCK_Q,), float("-inf"), tl.float32)
        for t0 in range(0, length, BLOCK_T):
            in_page = (t0 + offs_t) < length
            rows = (start + t0 + offs_t).to(tl.int64) * row_stride
            acc = tl.zeros((BLOCK_Q, BLOCK_T), dtype=tl.float32)
            low = tl.zeros((BLOCK_Q, BLOCK_T), dtype=tl.float32)
            for d0 in tl.static_range(0, D_PAD, BLOCK_D):
                cols = d0 + offs_d
                tile_mask = in_page[:, None] & (cols < D)[None, :]
                tile = tl.load(pages_ptr + rows[:, None] + cols[None, :], mask=tile_mask, other=0)
                q_hi = tl.load(q_hi_ptr + q_rows[:, None] + cols[None, :])
                if KIND == 3:  # float32 pages: IEEE products, no split
                    acc = tl.dot(q_hi, tl.trans(tile), acc, input_precision="ieee")
                else:
                    if KIND != 0:  # int8 codes and normalised bfloat16 are exact in float16
                        tile = tile.to(tl.float16)
                    q_lo = tl.load(q_lo_ptr + q_rows[:, None] + cols[None, :])
                    acc = tl.dot(q_hi, tl.trans(tile), acc)
                    low = tl.dot(q_lo, tl.trans(tile), low)
            if KIND != 3:
                acc = acc + low * low_scale
            if KIND == 2:
                scale = tl.load(scales_ptr + start + t0 + offs_t, mask=in_page, other=0.0)
                acc = acc * scale[None, :]
            acc = tl.where(in_page[None, :], acc, float("-inf"))
            best = tl.maximum(best, tl.max(acc, axis=1))
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
    lo: torch.Tensor
    n_queries: int
    lq: int  # padded tokens per query, a power of two >= 16
    d_pad: int
    low_scale: float
    # Queries are scaled by a power of two into [-1, 1] (exact, and MaxSim is linear in
    # the query), so float16 neither overflows nor loses bits to subnormals; results
    # are multiplied back by ``unscale``.
    unscale: float


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
    return n_queries * _next_pow2(max_tokens) * d_pad * 4


def pack_queries(queries: list[torch.Tensor], kind: int, device: torch.device) -> PackedQueries:
    """Pad float32 queries to one power-of-two length and split them into hi + lo parts.

    The batch is padded with zero queries to whole blocks of query rows, so the
    shared form never reads past it.
    """
    dim = int(queries[0].shape[1])
    lq = _next_pow2(max(int(q.shape[0]) for q in queries))
    block = _block_d(dim)
    d_pad = -(-dim // block) * block
    per_block = max(1, _blocks(lq, len(queries), False)[0] // lq)
    n = -(-len(queries) // per_block) * per_block
    padded = torch.zeros((n, lq, d_pad), dtype=torch.float32, device=device)
    for i, q in enumerate(queries):
        padded[i, : q.shape[0], :dim] = q.to(device=device, dtype=torch.float32)
    if kind == KIND_FP32:
        return PackedQueries(padded, padded, len(queries), lq, d_pad, 0.0, 1.0)
    largest = max(float(q.abs().max()) if q.numel() else 0.0 for q in queries)
    exponent = math.frexp(largest)[1] if largest > 0 and math.isfinite(largest) else 0
    if exponent:
        padded.mul_(2.0**-exponent)
    shift = 2.0**11  # float16 keeps 11 significant bits: lo carries the next 11
    hi = padded.to(torch.float16)
    lo = ((padded - hi.to(torch.float32)) * shift).to(torch.float16)
    return PackedQueries(hi, lo, len(queries), lq, d_pad, 1.0 / shift, 2.0**exponent)


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
    block_t: int,
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
    dummy = starts  # unused pointer arguments still need a tensor
    big = block_q * block_t >= 128 * 64
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
        BLOCK_T=block_t,
        BLOCK_D=_block_d(int(pages.shape[1])),
        KIND=kind,
        PAIRS=pairs,
        num_warps=8 if big else 4,
        num_stages=3,
    )
    return out


def default_block_t(lengths_mean: float) -> int:
    """Page tokens per tile: short pages waste less of a smaller tile."""
    return 32 if lengths_mean <= 48 else 64


def maxsim_shared(
    packed: PackedQueries,
    pages: torch.Tensor,
    starts: torch.Tensor,
    lengths: torch.Tensor,
    scales: torch.Tensor | None = None,
    block_t: int | None = None,
) -> torch.Tensor:
    """Every packed query against every item: float32 ``(n_queries, n_items)``.

    ``starts`` (int64) and ``lengths`` address each page's rows in ``pages``; every
    length must be >= 1.
    """
    n_items = int(starts.shape[0])
    if block_t is None:
        block_t = default_block_t(float(lengths.float().mean()) if n_items else 64.0)
    out = _launch(packed, pages, scales, starts, lengths, None, block_t)
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
    block_t: int | None = None,
) -> torch.Tensor:
    """Item ``i`` is query ``query_of[i]`` against the page at ``starts[i]``: ``(n,)``."""
    n_items = int(starts.shape[0])
    if block_t is None:
        block_t = default_block_t(float(lengths.float().mean()) if n_items else 64.0)
    out = _launch(packed, pages, scales, starts, lengths, query_of, block_t)
    summed = out.sum(dim=0) if out.shape[0] > 1 else out[0]
    return summed * packed.unscale if packed.unscale != 1.0 else summed
