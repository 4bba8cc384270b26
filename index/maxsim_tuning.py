"""Choosing the fused MaxSim kernel's launch shape: candidates, a fixed heuristic, a
per-shape timing on the GPU, and a cache of those choices on disk.

On a GPU the first call for a new shape (storage kind, dims, query block, page-length
and page-count buckets) times the candidate shapes and keeps the fastest, as Triton's
autotuner would. Triton caches the compiled kernels on disk; the choices are cached on
disk too (``~/.cache/latestore/maxsim-tuning.json``, or ``LATESTORE_KERNEL_TUNING_CACHE``),
per GPU model and triton version, so a new process (each ``latestore search`` call)
neither re-times nor loads every candidate. ``LATESTORE_KERNEL_AUTOTUNE=0`` uses the
fixed heuristic instead.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple

import torch

log = logging.getLogger(__name__)

KIND_HALF, KIND_BF16, KIND_INT8, KIND_FP32 = 0, 1, 2, 3


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


def dim_block(dim: int) -> int:
    """Dims the kernel multiplies per step (BLOCK_D): the largest of 128/64/32/16 that
    divides ``dim``, else 64 with the rest masked."""
    for block in (128, 64, 32, 16):
        if dim % block == 0:
            return block
    return 64


def packed_dim(dim: int) -> int:
    """Row width of packed queries: ``dim`` up to a whole number of dim blocks."""
    return -(-dim // dim_block(dim)) * dim_block(dim)


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
    if tuning.items > 1 and not tuning.presplit and packed_dim(key.dim) != dim_block(key.dim):
        return False
    # 128-token tiles of rows wider than 256 need more shared memory than sm_90 has
    # (bench/kernel_resources.py): compiling them only to fail would slow the first call.
    if tuning.block_t >= 128 and packed_dim(key.dim) > 256:
        return False
    # Two 128 x 128 float32 accumulators (exact products) fill all 255 registers and spill.
    if tuning.block_t * key.block_q > 128 * 64 and key.split and key.kind != KIND_FP32:
        return False
    # One dim block: nothing to roll, the same kernel as unrolled.
    return tuning.unroll_d or packed_dim(key.dim) != dim_block(key.dim)


_CHOSEN: dict[ShapeKey, Tuning] = {}
_CHOSEN_LOCK = threading.Lock()


def autotune_enabled(device: torch.device) -> bool:
    return device.type == "cuda" and os.environ.get("LATESTORE_KERNEL_AUTOTUNE", "1") != "0"


def choose(
    key: ShapeKey, fallback: Tuning, run: Callable[[Tuning], None], device: torch.device
) -> Tuning:
    """Time the candidates once per key and GPU (the last run leaves the call's result);
    a choice made before, in this process or (from the disk cache) another, is reused."""
    with _CHOSEN_LOCK:
        chosen = _CHOSEN.get(key)
    if chosen is None:  # every search comes here: the GPU and disk are asked on a miss only
        cache = _disk_cache(device)  # loads this GPU's earlier choices, once per process
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
    cache.save(key, best)
    return best


def run_fitting(run: Callable[[Tuning], None], first: Tuning) -> None:
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


class ChoiceCache:
    """Shapes chosen by timing, kept in a JSON file per GPU model and triton version.

    A damaged or foreign file is ignored (and later replaced); writes go to a temporary
    file renamed over the old one, so concurrent processes never read half a file.
    """

    def __init__(self, path: Path, device_key: str) -> None:
        self.path = path
        self.device_key = device_key

    def load(self) -> dict[ShapeKey, Tuning]:
        try:
            data = json.loads(self.path.read_text())
            entries = data[self.device_key] if isinstance(data, dict) else {}
        except (OSError, ValueError, KeyError):
            return {}
        names = {f.name for f in fields(Tuning)}
        out: dict[ShapeKey, Tuning] = {}
        for key, value in entries.items() if isinstance(entries, dict) else ():
            try:
                shape = ShapeKey(*json.loads(key))
                if isinstance(value, dict) and set(value) <= names:
                    out[shape] = Tuning(**value)
            except (TypeError, ValueError):
                continue  # an entry from another layout of ShapeKey: re-timed
        return out

    def save(self, key: ShapeKey, tuning: Tuning) -> None:
        try:
            data = json.loads(self.path.read_text())
            if not isinstance(data, dict):
                data = {}
        except (OSError, ValueError):
            data = {}
        entries = data.setdefault(self.device_key, {})
        if not isinstance(entries, dict):
            entries = data[self.device_key] = {}
        entries[json.dumps(list(key))] = asdict(tuning)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", dir=self.path.parent, suffix=".tmp", delete=False
            ) as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
            os.replace(handle.name, self.path)
        except OSError as exc:  # a read-only home: the choice lives for this process only
            log.info("latestore: kernel choices not cached on disk: %s", exc)


def cache_path() -> Path:
    return Path(
        os.environ.get("LATESTORE_KERNEL_TUNING_CACHE")
        or Path.home() / ".cache" / "latestore" / "maxsim-tuning.json"
    )


def device_key(device: torch.device) -> str:
    """The GPU model and the software that compiles for it."""
    import triton

    name = torch.cuda.get_device_name(device)
    return f"{name}|triton {triton.__version__}|torch {torch.__version__}"


_CACHES: dict[str, ChoiceCache] = {}


def _disk_cache(device: torch.device) -> ChoiceCache:
    key = device_key(device)
    with _CHOSEN_LOCK:
        cache = _CACHES.get(key)
        if cache is None:
            cache = _CACHES[key] = ChoiceCache(cache_path(), key)
            _CHOSEN.update(cache.load())
    return cache
