"""Launching the fused MaxSim kernel: query packing, launch shapes, a tuning cache.

``maxsim_shared`` scores every query of a batch against the same pages,
``maxsim_pairs`` each query against its own pages. Both take pages by address (first
row and length in one resident matrix), so nothing is gathered or copied.

Launch shape. On a GPU the first call for a new shape (storage kind, dims, query
block, page-length and page-count buckets) times a few candidate tiles and keeps the
fastest for the process, as Triton's autotuner would; compiled kernels are cached on
disk by Triton, so a later process pays only the few timed runs. Set
``LATESTORE_KERNEL_AUTOTUNE=0`` to use the fixed heuristic instead.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import torch

from latestore.index import maxsim_triton

if maxsim_triton.AVAILABLE:
    from latestore.index.maxsim_triton import maxsim_kernel

log = logging.getLogger(__name__)

KIND_HALF, KIND_BF16, KIND_INT8, KIND_FP32 = 0, 1, 2, 3
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


@dataclass(frozen=True)
class Tuning:
    """Launch shape: page tokens per tile, warps per program, pipeline stages, whether
    the query's float16 split is read pre-made (:attr:`PackedQueries.halves`), and how
    many pages one program scores with its query block (the shared form only)."""

    block_t: int
    num_warps: int
    num_stages: int
    presplit: bool = False
    items: int = 1
    # Dims wider than one block (D_PAD > BLOCK_D): unrolled, each block gets its own
    # shared-memory buffers; rolled, one set is reused (bounded whatever the dim).
    unroll_d: bool = True


# Timed on first use per shape. On an H200 (2026-11-26 sweep of eight shapes over the
# four benchmark cases) these were the best or within 5% of it; 8 warps and 4-stage
# 128-token tiles never were.
CANDIDATES = (
    Tuning(64, 4, 3),
    Tuning(128, 4, 3),
    Tuning(64, 4, 4),
    Tuning(32, 4, 3),
    Tuning(32, 4, 2),
    Tuning(32, 4, 1),  # the last resort for wide float32 pages
    # Untimed on a GPU yet (proposed after the H200 run): the query split made once on
    # the host instead of by every program; float32 pages skip these.
    Tuning(32, 4, 3, presplit=True),
    Tuning(64, 4, 3, presplit=True),
    Tuning(128, 4, 3, presplit=True),
    # Untimed too: four pages per program share one query block, which short pages
    # re-read about as many bytes for as they hold themselves (100k pages of 30-300
    # tokens: a 32 x 128 float32 query block is 16 KiB, a mean page 42 KiB).
    Tuning(32, 4, 3, presplit=True, items=4),
    Tuning(64, 4, 3, presplit=True, items=4),
    Tuning(64, 4, 3, items=4),
    # Wide dims only (320, 384, 768, 1,024): the dim loop rolled, shared memory bounded.
    Tuning(64, 4, 3, unroll_d=False),
    Tuning(32, 4, 2, unroll_d=False),
    Tuning(32, 4, 1, unroll_d=False),
)
# Fits every storage kind, dim up to 1,024 and 128-row query block in ~100 KiB of shared
# memory (bench/kernel_resources.py compiles it for sm_80, sm_86/89 and sm_90 in CI).
LAST_RESORT = Tuning(32, 4, 1, unroll_d=False)


def default_tuning(mean_length: float, d_pad: int) -> Tuning:
    """The fixed heuristic (no timing), from the H200 sweep of bench/gpu_kernels.py."""
    if mean_length <= 48:
        block_t = 32
    elif mean_length >= 256 and d_pad <= 128:
        block_t = 128
    else:
        block_t = 64
    return Tuning(block_t, 4, 3)


def _next_pow2(n: int, floor: int = 16) -> int:
    return max(floor, 1 << max(0, (n - 1).bit_length()))


def _block_d(dim: int) -> int:
    for block in (128, 64, 32, 16):
        if dim % block == 0:
            return block
    return 64


def packed_dim(dim: int) -> int:
    """Row width of packed queries: ``dim`` up to a whole number of dim blocks."""
    return -(-dim // _block_d(dim)) * _block_d(dim)


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


class ShapeKey(NamedTuple):
    """What a launch shape is chosen for (lengths and program counts bucketed)."""

    kind: int
    dim: int
    block_q: int
    seg: int
    pairs: bool
    split: bool
    length_bucket: int  # mean page tokens, to a power of two
    size_bucket: int  # log8 of the number of programs


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


def applies(tuning: Tuning, key: ShapeKey) -> bool:
    """Is ``tuning`` worth timing for ``key``, or the same kernel as another / useless?"""
    if tuning.presplit and key.kind == KIND_FP32:  # float32 pages have no split to make
        return False
    # Pairs give each item its own query block; on long pages the query's re-reads are
    # a small share of the traffic, so several pages per program cannot pay.
    if tuning.items > 1 and (key.pairs or key.length_bucket > 256):
        return False
    # Past one dim block the in-kernel split is redone per tile: several pages per
    # program then share nothing but the query's scan for its scale.
    if tuning.items > 1 and not tuning.presplit and packed_dim(key.dim) != _block_d(key.dim):
        return False
    # 128-token tiles of rows wider than 256 need more shared memory than sm_90 has
    # (bench/kernel_resources.py): compiling them only to fail would slow the first call.
    if tuning.block_t >= 128 and packed_dim(key.dim) > 256:
        return False
    # Two 128 x 128 float32 accumulators (exact products) fill all 255 registers and spill.
    if tuning.block_t * key.block_q > 128 * 64 and key.split and key.kind != KIND_FP32:
        return False
    # One dim block: nothing to roll, the same kernel as unrolled.
    return tuning.unroll_d or packed_dim(key.dim) != _block_d(key.dim)


_CHOSEN: dict[ShapeKey, Tuning] = {}
_CHOSEN_LOCK = threading.Lock()


def _autotune_enabled(device: torch.device) -> bool:
    return device.type == "cuda" and os.environ.get("LATESTORE_KERNEL_AUTOTUNE", "1") != "0"


def _choose(key: ShapeKey, fallback: Tuning, run: Callable[[Tuning], None]) -> Tuning:
    """Time the candidates once per key (the last run leaves the call's result)."""
    with _CHOSEN_LOCK:
        chosen = _CHOSEN.get(key)
    if chosen is not None:
        run(chosen)
        return chosen
    timings: list[tuple[float, Tuning]] = []
    for tuning in (fallback, *[c for c in CANDIDATES if c != fallback]):
        if not applies(tuning, key):
            continue
        try:
            run(tuning)  # compiles (or loads from Triton's cache)
        except Exception as exc:  # out of shared memory or registers: not a candidate
            if tuning.presplit or tuning.items > 1 or not tuning.unroll_d:  # never timed
                log.warning("latestore: MaxSim shape %s skipped: %s", tuning, exc)
                continue
            if "out of resource" not in str(exc).lower():
                raise
            continue
        begin = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        begin.record()
        for _ in range(3):
            run(tuning)
        end.record()
        end.synchronize()
        timings.append((begin.elapsed_time(end), tuning))
    if not timings:
        raise RuntimeError("no MaxSim kernel configuration fits this GPU")
    best = min(timings, key=lambda item: item[0])[1]
    run(best)
    with _CHOSEN_LOCK:
        _CHOSEN[key] = best
    return best


def _run_fitting(run: Callable[[Tuning], None], first: Tuning) -> None:
    """Run ``first``, or smaller shapes if it needs more shared memory than the GPU has."""
    # float32 pages of dim 320 needed 242 KiB at 64/4/3 on an H200 (227 KiB allowed).
    shapes = (
        first,
        Tuning(first.block_t, first.num_warps, 2),
        Tuning(32, 4, 2),
        Tuning(32, 4, 1),
        Tuning(32, 4, 2, unroll_d=False),
        LAST_RESORT,
    )
    for shape in shapes:
        try:
            run(shape)
            return
        except Exception as exc:
            if "out of resource" not in str(exc).lower() or shape == LAST_RESORT:
                raise


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
        "BLOCK_D": _block_d(dim),
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
    if not _autotune_enabled(pages.device):
        _run_fitting(run, fallback)
        return out
    _choose(shape_key(packed, kind, dim, pairs, mean_length, n_items), fallback, run)
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
