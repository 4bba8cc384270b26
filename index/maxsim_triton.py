"""Fused MaxSim in Triton: page tiles are scored against query blocks in registers.

One program scores ``ITEMS`` consecutive *items* (pages, each addressed by its first row
and length in the resident packed matrix) against one block of query rows, prepared
once for all of them. The similarity matrix never leaves the chip: each ``(page tokens
x query rows)`` tile is reduced to a running per-query-token maximum as soon as it is
computed, so the kernel reads each page's bytes once from HBM and writes one float per
(query, page).

Two launch forms share the kernel (see maxsim_launch.py):

* **shared**: every query against the same pages. Programs for the same page have
  adjacent ids, so the groups of query rows that re-read a page tile hit L2.
* **pairs**: a list of (query, page) items, each query against its own candidates.

Precision. Page tiles are multiplied on tensor cores in their stored 16-bit form
(int8 codes are exact in float16, and their per-token scale is applied to the float32
products). Each program scales its float32 query block by a power of two into
[1, 2) (exact), splits it into a float16 high part and a low part carrying the next
11 bits, ``q = hi + lo / 2**11``, and multiplies both with float32 accumulation: a
float16 page value times either part is exact in float32, so scores match float32
arithmetic to about 1e-7 relative, not the 1e-3 of a half-precision query. bfloat16
tiles are converted to float16 first, exact for the normalised vectors these models
emit (any |x| <= 65504 keeps its 8 significant bits). float32 pages use IEEE float32
products. ``SPLIT=False`` drops the low part (half the tensor-core work).
``PRESPLIT=True`` reads that split made once on the host instead (maxsim_launch's
``PackedQueries.halves``: float16 high and low parts with a power of two per query row),
so no program rescans and splits its query block: a launch shape the autotuner times
against the in-kernel split, which costs most on short pages.

Addresses: each tile's base is a 64-bit scalar (a store may hold more than 2**31
elements); offsets inside a tile are 32-bit, which keeps loads vectorised.
"""

from __future__ import annotations

try:  # triton ships with CUDA builds of torch; CPU machines may lack it
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised on machines without triton
    triton = None
    tl = None

AVAILABLE = triton is not None

if triton is not None:

    @triton.jit  # type: ignore[untyped-decorator]
    def _split(q, SPLIT: tl.constexpr):  # type: ignore[no-untyped-def]
        """float16 high part of a float32 block, and the scaled remainder."""
        hi = q.to(tl.float16)
        if SPLIT:  # noqa: SIM108 - a constexpr branch, which Triton compiles away
            lo = ((q - hi.to(tl.float32)) * 2048.0).to(tl.float16)
        else:
            lo = hi
        return hi, lo

    @triton.jit  # type: ignore[untyped-decorator]
    def _read_halves(hi_ptr, lo_ptr, offsets, SPLIT: tl.constexpr):  # type: ignore[no-untyped-def]
        """The host-made float16 halves; without SPLIT only the high part is read."""
        hi = tl.load(hi_ptr + offsets)
        if SPLIT:  # noqa: SIM108 - a constexpr branch, which Triton compiles away
            lo = tl.load(lo_ptr + offsets)
        else:
            lo = hi
        return hi, lo

    @triton.jit  # type: ignore[untyped-decorator]
    def _query_step(  # type: ignore[no-untyped-def]
        q_base, hi_ptr, lo_ptr, row0, q_offs, d0, inverse,
        KIND: tl.constexpr, SPLIT: tl.constexpr, PRESPLIT: tl.constexpr,
    ):  # fmt: skip
        """One dim block of the query, transposed: float32 rows, and their float16 halves
        (read pre-made, or split here); float32 pages use the rows themselves."""
        if PRESPLIT and KIND != 3:
            q_hi, q_lo = _read_halves(hi_ptr, lo_ptr, row0 + d0 + q_offs, SPLIT)
            q = q_hi
        else:
            q = tl.load(q_base + d0 + q_offs)
            if KIND != 3:
                q_hi, q_lo = _split(q * inverse, SPLIT)
            else:
                q_hi = q
                q_lo = q
        return q, q_hi, q_lo

    @triton.jit  # type: ignore[untyped-decorator]
    def _page_chunk(  # type: ignore[no-untyped-def]
        tile_base, tile_offs, d0, in_page, offs_d, D: tl.constexpr, D_PAD: tl.constexpr
    ):
        """One dim block of a page tile; rows past the page and dims past D read 0."""
        if D == D_PAD:  # noqa: SIM108 - a constexpr branch, which Triton compiles away
            inside = in_page[:, None]
        else:
            inside = in_page[:, None] & ((d0 + offs_d) < D)[None, :]
        return tl.load(tile_base + d0 + tile_offs, mask=inside, other=0)

    @triton.jit  # type: ignore[untyped-decorator]
    def _multiply(  # type: ignore[no-untyped-def]
        tile, q, q_hi, q_lo, acc, low, KIND: tl.constexpr, SPLIT: tl.constexpr
    ):
        """Accumulate one dim block's products: ``acc`` (high part) and ``low``."""
        if KIND == 3:  # float32 pages: IEEE products
            acc = tl.dot(tile, q, acc, input_precision="ieee")
        else:
            if KIND != 0:  # int8 codes and normalised bfloat16: exact in float16
                tile = tile.to(tl.float16)
            acc = tl.dot(tile, q_hi, acc)
            if SPLIT:
                low = tl.dot(tile, q_lo, low)
        return acc, low

    @triton.jit  # type: ignore[untyped-decorator]
    def _dim_step(  # type: ignore[no-untyped-def]
        tile_base, tile_offs, d0, in_page, offs_d, q_base, hi_ptr, lo_ptr, row0, q_offs,
        inverse, acc, low,
        D: tl.constexpr, D_PAD: tl.constexpr, KIND: tl.constexpr, SPLIT: tl.constexpr,
        PRESPLIT: tl.constexpr,
    ):  # fmt: skip
        tile = _page_chunk(tile_base, tile_offs, d0, in_page, offs_d, D, D_PAD)
        q, q_hi, q_lo = _query_step(
            q_base, hi_ptr, lo_ptr, row0, q_offs, d0, inverse, KIND, SPLIT, PRESPLIT
        )
        return _multiply(tile, q, q_hi, q_lo, acc, low, KIND, SPLIT)

    # Triton reads the parameters' annotations itself (constexpr): only those are typed.
    @triton.jit  # type: ignore[untyped-decorator]
    def maxsim_kernel(  # type: ignore[no-untyped-def]
        q_ptr,
        hi_ptr,
        lo_ptr,
        power_ptr,
        pages_ptr,
        scales_ptr,
        starts_ptr,
        lengths_ptr,
        query_of_ptr,
        out_ptr,
        n_items,
        n_groups,
        row_stride,
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
        PRESPLIT: tl.constexpr,
        ITEMS: tl.constexpr,
        UNROLL_D: tl.constexpr,
    ):
        pid = tl.program_id(0).to(tl.int64)
        group = pid % n_groups
        first_item = (pid // n_groups) * ITEMS
        if PAIRS:  # one item per program (the launcher's rule): its own query block
            q_row0 = tl.load(query_of_ptr + first_item).to(tl.int64) * LQ + group * BLOCK_Q
        else:
            q_row0 = group * BLOCK_Q
        offs_q = tl.arange(0, BLOCK_Q)
        offs_t = tl.arange(0, BLOCK_T)
        offs_d = tl.arange(0, BLOCK_D)
        q_base = q_ptr + q_row0 * D_PAD
        # Query blocks are read transposed, (dim x query rows): page tokens are the MMA's
        # M side (64 or 128 rows, what Hopper's warpgroup MMA needs) even for one short
        # query.
        q_offs = offs_q[None, :] * D_PAD + offs_d[:, None]
        # A power of two that brings the block's largest value into [1, 2): scaling by
        # it is exact, and float16 then neither overflows nor drops bits to subnormals.
        inverse = 1.0
        if KIND != 3 and not PRESPLIT:
            largest = tl.zeros((BLOCK_Q,), dtype=tl.float32)
            for d_scan in range(0, D_PAD, BLOCK_D):
                block = tl.load(q_base + d_scan + q_offs)
                largest = tl.maximum(largest, tl.max(tl.abs(block), axis=0))
            top = tl.max(largest, axis=0)
            power = (top.to(tl.int32, bitcast=True) & 0x7F800000).to(tl.float32, bitcast=True)
            power = tl.where(power > 0.0, power, 1.0)
            inverse = 1.0 / power
        if D_PAD == BLOCK_D:  # the whole query block fits one step: prepare it once
            q, q_hi, q_lo = _query_step(
                q_base, hi_ptr, lo_ptr, q_row0 * D_PAD, q_offs, 0, inverse, KIND, SPLIT, PRESPLIT
            )
        if KIND != 3:
            if PRESPLIT:  # noqa: SIM108 - constexpr: each query row has its own power
                row_power = tl.load(power_ptr + q_row0 + offs_q)
            else:
                row_power = power
        tile_offs = offs_t[:, None] * row_stride + offs_d[None, :]
        # Several items per program share the query block prepared above: on short
        # pages, re-reading and splitting it per page costs as much as the page itself.
        for i in range(ITEMS):
            item = first_item + i
            real = item < n_items  # the last program's spare slots score nothing
            start = tl.load(starts_ptr + item, mask=real, other=0).to(tl.int64)
            length = tl.load(lengths_ptr + item, mask=real, other=0).to(tl.int32)
            best = tl.full((BLOCK_Q,), float("-inf"), tl.float32)
            for t0 in range(0, length, BLOCK_T):
                in_page = (t0 + offs_t) < length
                tile_base = pages_ptr + (start + t0) * row_stride
                acc = tl.zeros((BLOCK_T, BLOCK_Q), dtype=tl.float32)
                low = tl.zeros((BLOCK_T, BLOCK_Q), dtype=tl.float32)
                if D_PAD == BLOCK_D:
                    tile = _page_chunk(tile_base, tile_offs, 0, in_page, offs_d, D, D_PAD)
                    acc, low = _multiply(tile, q, q_hi, q_lo, acc, low, KIND, SPLIT)
                elif UNROLL_D:
                    # Each dim block's operands get their own buffers: no loop to
                    # pipeline, but shared memory grows with the dim and query rows.
                    for d_fixed in tl.static_range(0, D_PAD, BLOCK_D):
                        acc, low = _dim_step(
                            tile_base, tile_offs, d_fixed, in_page, offs_d, q_base, hi_ptr,
                            lo_ptr, q_row0 * D_PAD, q_offs, inverse, acc, low,
                            D, D_PAD, KIND, SPLIT, PRESPLIT,
                        )  # fmt: skip
                else:
                    # One set of buffers reused per dim block, pipelined across blocks:
                    # shared memory no longer grows with the dim (fits dims to 1,024
                    # with 128 query rows, and GPUs with ~100 KiB per program).
                    for d_rolled in range(0, D_PAD, BLOCK_D):
                        acc, low = _dim_step(
                            tile_base, tile_offs, d_rolled, in_page, offs_d, q_base, hi_ptr,
                            lo_ptr, q_row0 * D_PAD, q_offs, inverse, acc, low,
                            D, D_PAD, KIND, SPLIT, PRESPLIT,
                        )  # fmt: skip
                if SPLIT:
                    acc = acc + low * (1.0 / 2048.0)
                if KIND == 2:
                    scale = tl.load(scales_ptr + start + t0 + offs_t, mask=in_page, other=0.0)
                    acc = acc * scale[:, None]
                acc = tl.where(in_page[:, None], acc, float("-inf"))
                best = tl.maximum(best, tl.max(acc, axis=0))
            if KIND != 3:
                best = best * row_power
            # Zero-padded query rows score 0 against every token, so they add nothing.
            if SEG == BLOCK_Q:
                tl.store(out_ptr + group * n_items + item, tl.sum(best, axis=0), mask=real)
            else:
                per_query = tl.sum(tl.reshape(best, (BLOCK_Q // SEG, SEG)), axis=1)
                seg_rows = group * (BLOCK_Q // SEG) + tl.arange(0, BLOCK_Q // SEG)
                out_offs = seg_rows.to(tl.int64) * n_items + item
                # A block mask: the interpreter does not broadcast a scalar one.
                tl.store(out_ptr + out_offs, per_query, mask=(seg_rows * 0 + item) < n_items)
