"""GPU MaxSim kernels side by side: latestore's fused kernel, flash-maxsim, late-interaction-
kernels and a padded torch einsum, on the same resident float16 pages.

Times are CUDA-synchronised wall clock as a caller sees them (query packing included),
best of ``REPEATS`` calls. GB/s counts page bytes read. Every result is checked against
a float64 reference on a sample of pages, including pages past 2**31 elements.
The peers are imported only if installed (they are carried for the benchmark only).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import Any

import torch

from latestore.index import maxsim_launch as mt
from latestore.index import maxsim_tuning as tune

REPEATS = 20
DEVICE = "cuda"  # the CPU (with TRITON_INTERPRET=1) only for a smoke test of this script
CASES = [  # (name, pages, tokens per page or (lo, hi) for varlen, dim)
    ("1000 x 1024 x 128", 1000, 1024, 128),
    ("5000 x 256 x 384", 5000, 256, 384),
    ("100k varlen 30-300 x 128", 100_000, (30, 300), 128),
    ("20000 x 1024 x 128", 20_000, 1024, 128),
]
SWEEP = list(tune.CANDIDATES)


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def wall(fn: Callable[[], Any], repeats: int = REPEATS) -> float:
    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def unit_rows(n: int, dim: int, seed: int) -> torch.Tensor:
    """float16 unit vectors, made on the device in bounded pieces."""
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    out = torch.empty((n, dim), dtype=torch.float16, device=DEVICE)
    for lo in range(0, n, 1 << 22):
        block = torch.randn((min(n, lo + (1 << 22)) - lo, dim), device=DEVICE, generator=gen)
        out[lo : lo + len(block)] = torch.nn.functional.normalize(block, dim=1).half()
    return out


def reference(
    query: torch.Tensor, rows: torch.Tensor, starts: list[int], lens: list[int]
) -> list[float]:
    q = query.double()
    return [
        float((q @ rows[s : s + n].double().T).max(dim=1).values.sum())
        for s, n in zip(starts, lens, strict=True)
    ]


def max_rel_error(
    got: torch.Tensor,
    query: torch.Tensor,
    rows: torch.Tensor,
    starts: torch.Tensor,
    lens: torch.Tensor,
) -> float:
    n = len(starts)
    sample = sorted({0, 1, n // 2, n - 2, n - 1})  # the last pages lie past 2**31 elements
    s_list = [int(starts[i]) for i in sample]
    l_list = [int(lens[i]) for i in sample]
    want = reference(query, rows, s_list, l_list)
    values = got.float().cpu().reshape(-1)
    if not torch.isfinite(values[sample]).all():
        return float("inf")
    return max(abs(float(values[i]) - w) / abs(w) for i, w in zip(sample, want, strict=True))


def peers() -> dict[str, Any]:
    found = {}
    for name in ("flash_maxsim", "late_interaction_kernels"):
        try:
            found[name] = importlib.import_module(name)
        except Exception as exc:  # a peer that fails to import is reported
            found[name] = exc
    return found


def run_case(name: str, n_pages: int, tokens: Any, dim: int, sweep: bool) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(7)
    if isinstance(tokens, tuple):
        lens = torch.randint(tokens[0], tokens[1] + 1, (n_pages,), generator=gen)
    else:
        lens = torch.full((n_pages,), tokens, dtype=torch.int64)
    total = int(lens.sum())
    rows = unit_rows(total, dim, seed=n_pages)
    lens_d = lens.to(DEVICE)
    starts_d = torch.cumsum(lens_d, 0) - lens_d
    query = torch.nn.functional.normalize(torch.randn((32, dim), device=DEVICE), dim=1)
    page_bytes = total * dim * 2
    row: dict[str, Any] = {"case": name, "tokens": total, "elements": total * dim}
    mean = float(lens.float().mean())

    def ours(tuning: tune.Tuning | None = None, exact: bool = True) -> torch.Tensor:
        packed = mt.pack_queries([query], rows.device, exact=exact)
        return mt.maxsim_shared(packed, rows, starts_d, lens_d, tuning=tuning, mean_length=mean)

    results: dict[str, tuple[float, float]] = {}
    best_tuning = None
    if sweep:
        timings = []
        packed = mt.pack_queries([query], rows.device)
        key = mt.shape_key(packed, tune.KIND_HALF, dim, False, mean, n_pages)
        for tuning in (t for t in SWEEP if tune.applies(t, key)):
            try:
                timings.append((wall(lambda t=tuning: ours(t), repeats=8), tuning))
            except Exception as exc:  # e.g. out of shared memory
                row.setdefault("sweep_errors", []).append(f"{tuning}: {exc!s:.120}")
        row["sweep_ms"] = {_label(t): s * 1e3 for s, t in timings}
        best_tuning = min(timings, key=lambda x: x[0])[1]
        row["best_tuning"] = _label(best_tuning)
    before = dict(tune._CHOSEN)
    results["latestore"] = (wall(ours), max_rel_error(ours(), query, rows, starts_d, lens_d))
    # The shape the autotuner picked for this case (see _label).
    row["autotune_choice"] = [_label(t) for k, t in tune._CHOSEN.items() if k not in before]
    if best_tuning is not None:
        results["latestore (best swept)"] = (
            wall(lambda: ours(best_tuning)),
            max_rel_error(ours(best_tuning), query, rows, starts_d, lens_d),
        )
    results["latestore fast (fp16 query)"] = (
        wall(lambda: ours(exact=False)),
        max_rel_error(ours(exact=False), query, rows, starts_d, lens_d),
    )
    q16 = query.half()
    equal = not isinstance(tokens, tuple)
    found = peers()
    fm = found["flash_maxsim"]
    if not isinstance(fm, Exception):
        if equal:
            padded = rows.view(n_pages, tokens, dim)
            call = lambda: fm.flash_maxsim(q16, padded)  # noqa: E731
        else:
            cu = torch.zeros(n_pages + 1, dtype=torch.int32, device=DEVICE)
            cu[1:] = torch.cumsum(lens_d, 0)
            longest = int(lens.max())
            call = lambda: fm.flash_maxsim_packed(q16, rows, cu, longest)  # noqa: E731
        results["flash-maxsim 0.3.0"] = _timed(call, query, rows, starts_d, lens_d)
    else:
        row["flash_maxsim_error"] = str(fm)
    lik = found["late_interaction_kernels"]
    if total * dim >= 1 << 31 and not isinstance(lik, Exception):
        # Its 32-bit offsets read out of bounds here (an illegal address on an H200 on
        # 2026-11-26), which poisons the CUDA context for every later section.
        row["late_interaction_kernels_error"] = "skipped: 32-bit offsets past 2**31 elements"
    elif not isinstance(lik, Exception):
        if equal:
            padded = rows.view(n_pages, tokens, dim)
            call = lambda: lik.maxsim(q16, padded)  # noqa: E731
        else:
            cu_d = torch.zeros(n_pages + 1, dtype=torch.int32, device=DEVICE)
            cu_d[1:] = torch.cumsum(lens_d, 0)
            cu_q = torch.tensor([0, 32], dtype=torch.int32, device=DEVICE)
            longest = int(lens.max())
            call = lambda: lik.maxsim_varlen(q16, rows, cu_q, cu_d, 32, longest)[0]  # noqa: E731
        results["late-interaction-kernels 0.4.5"] = _timed(call, query, rows, starts_d, lens_d)
    else:
        row["late_interaction_kernels_error"] = str(lik)
    if equal and total * 32 * 2 < 8 << 30:  # the einsum's output must fit
        padded = rows.view(n_pages, tokens, dim)
        call = lambda: torch.einsum("qd,ptd->ptq", q16, padded).amax(dim=1).sum(dim=1)  # noqa: E731
        results["torch einsum fp16"] = _timed(call, query, rows, starts_d, lens_d)
    for label, (seconds, error) in results.items():
        row[label] = {
            "ms": seconds * 1e3,
            "gbps": page_bytes / seconds / 1e9,
            "max_rel_error": error,
        }
    return row


def _label(tuning: tune.Tuning) -> str:
    """``tokens/warps/stages``, then ``/pre`` (pre-split query), ``/xN`` (N pages per
    program) and ``/rolled`` (the dim loop not unrolled)."""
    shape = f"{tuning.block_t}/{tuning.num_warps}/{tuning.num_stages}"
    shape += "/pre" if tuning.presplit else ""
    shape += f"/x{tuning.items}" if tuning.items > 1 else ""
    return shape + ("" if tuning.unroll_d else "/rolled")


def _timed(
    call: Callable[[], torch.Tensor],
    query: torch.Tensor,
    rows: torch.Tensor,
    starts: torch.Tensor,
    lens: torch.Tensor,
) -> tuple[float, float]:
    try:
        seconds = wall(call)
        return seconds, max_rel_error(call().reshape(-1), query, rows, starts, lens)
    except Exception as exc:  # a peer that fails is reported
        print(f"  peer failed: {exc!s:.200}", flush=True)
        return float("nan"), float("nan")


def many_queries(n_queries: int = 32) -> dict[str, Any]:
    """n queries against 20M tokens in one pass, against one query."""
    n_pages, tokens, dim = 20_000, 1024, 128
    rows = unit_rows(n_pages * tokens, dim, seed=99)
    lens = torch.full((n_pages,), tokens, dtype=torch.int64, device=DEVICE)
    starts = torch.cumsum(lens, 0) - lens
    queries = [
        torch.nn.functional.normalize(torch.randn((32, dim), device=DEVICE), dim=1)
        for _ in range(n_queries)
    ]
    out: dict[str, Any] = {"tokens": n_pages * tokens, "query_tokens": 32}
    for exact in (True, False):
        label = "exact" if exact else "fast"

        def run(qs: list[torch.Tensor], ex: bool = exact) -> torch.Tensor:
            packed = mt.pack_queries(qs, rows.device, exact=ex)
            return mt.maxsim_shared(packed, rows, starts, lens, mean_length=float(tokens))

        one = wall(lambda: run(queries[:1]), repeats=10)
        batch = wall(lambda: run(queries), repeats=5)
        flops = 2 * n_queries * 32 * n_pages * tokens * dim * (2 if exact else 1)
        out[label] = {
            "one_query_ms": one * 1e3,
            f"{n_queries}_queries_ms": batch * 1e3,
            "ratio": batch / one,
            "tensor_tflops": flops / batch / 1e12,
        }
    return out


def copy_ceiling() -> float:
    src = torch.empty(1 << 31, dtype=torch.uint8, device=DEVICE)
    dst = torch.empty_like(src)
    seconds = wall(lambda: dst.copy_(src), repeats=10)
    return 2 * src.numel() / seconds / 1e9
