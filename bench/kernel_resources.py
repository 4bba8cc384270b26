"""The fused MaxSim kernel compiled ahead of time for a GPU this machine need not have.

For each launch shape the autotuner may pick, Triton compiles the kernel exactly as a
launch on that GPU would (the same argument specialisation, through Triton's own
binder) down to the GPU's machine code, with the ``ptxas`` that ships in the triton
wheel. The report says what each shape costs the chip:

* registers per thread, and bytes per thread spilled to local memory (off chip);
* shared memory per program, against the GPU's limit (a shape past it cannot launch);
* programs that fit on one SM at once, by registers and by shared memory;
* which tensor-core instructions the MMAs became: Hopper's warpgroup ``wgmma``,
  Blackwell's ``tcgen05``, the older ``mma.sync``, or none (float32 pages: FMA).

No GPU and no CUDA driver are needed: ``python -m bench.kernel_resources`` (``--arch 80``
for an A100). This checks that every shape compiles for the device before a device run
and shows which ones spill; it measures no speed. Do not run it with
``TRITON_INTERPRET=1``, which replaces compiled kernels by the interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from latestore.index import maxsim_launch as mt
from latestore.index import maxsim_tuning as tune

# Shared memory one program may opt into, and registers, per SM (CUDA's tables).
SHARED_LIMIT = {100: 232_448, 90: 232_448, 80: 166_912, 89: 101_376, 86: 101_376}
SHARED_PER_SM = {100: 233_472, 90: 233_472, 80: 167_936, 89: 102_400, 86: 102_400}
REGISTERS_PER_SM = 65_536
THREADS_PER_SM = {100: 2048, 90: 2048, 80: 2048, 89: 1536, 86: 1536}
PAGE_DTYPES = {
    tune.KIND_HALF: torch.float16,
    tune.KIND_BF16: torch.bfloat16,
    tune.KIND_INT8: torch.int8,
    tune.KIND_FP32: torch.float32,
}
KIND_NAMES = {tune.KIND_HALF: "float16", tune.KIND_BF16: "bfloat16", tune.KIND_INT8: "int8"}
KIND_NAMES[tune.KIND_FP32] = "float32"


@dataclass(frozen=True)
class Case:
    """One launch: storage kind, dim, the query batch, the form and the shape."""

    kind: int
    dim: int
    n_queries: int
    query_tokens: int
    pairs: bool
    shape: tune.Tuning
    exact: bool = True

    def label(self) -> str:
        form = "pairs" if self.pairs else "shared"
        s = self.shape
        extra = " presplit" if s.presplit else ""
        extra += f" items={s.items}" if s.items > 1 else ""
        extra += "" if s.unroll_d else " rolled"
        return (
            f"{KIND_NAMES[self.kind]} d={self.dim} {self.n_queries}x{self.query_tokens}q"
            f" {form}{'' if self.exact else ' fast'} | t={s.block_t} w={s.num_warps}"
            f" s={s.num_stages}{extra}"
        )


@dataclass(frozen=True)
class Resources:
    case: str
    arch: int
    registers: int
    spilled_bytes: int  # per thread
    shared_bytes: int
    fits_shared: bool
    programs_per_sm: int
    wgmma: int
    tcgen05: int  # Blackwell's MMA (sm_100)
    mma_sync: int
    compile_s: float
    error: str = ""


def _binder_args(case: Case) -> tuple[tuple[object, ...], dict[str, object]]:
    """Small CPU tensors of the launch's dtypes, and its constants: what the binder
    needs to specialise the kernel as a real launch would (alignment, dtypes, 1s)."""
    packed = mt.pack_queries(
        [np.zeros((case.query_tokens, case.dim), np.float32)] * case.n_queries,
        torch.device("cpu"),
        exact=case.exact,
    )
    constants = mt.kernel_constants(packed, case.dim, case.kind, case.pairs, case.shape)
    f32 = torch.zeros(64)
    halves = torch.zeros(64, dtype=torch.float16) if constants["PRESPLIT"] else f32
    i64 = torch.zeros(64, dtype=torch.int64)
    pages = torch.zeros((64, case.dim), dtype=PAGE_DTYPES[case.kind])
    scales = f32 if case.kind == tune.KIND_INT8 else i64
    n_groups, _ = mt.launch_groups(packed, case.pairs)
    args = (f32, halves, halves, f32, pages, scales, i64, i64, i64, f32, 100_003, n_groups)
    return (*args, pages.stride(0)), {
        **constants,
        "num_warps": case.shape.num_warps,
        "num_stages": case.shape.num_stages,
    }


def _bin_tool(name: str) -> str:
    import triton

    return str(Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name)


def compile_case(case: Case, arch: int) -> Resources:
    """Compile one launch for ``sm_<arch>`` and read its resources off the binary."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature

    from latestore.index.maxsim_triton import maxsim_kernel as kernel

    target = GPUTarget("cuda", arch, 32)
    backend = make_backend(target)
    args, kwargs = _binder_args(case)
    begin = time.perf_counter()
    try:
        # Triton's own binder and packing: the signature a launch on this GPU would get.
        binder = create_function_from_signature(kernel.signature, kernel.params, backend)
        bound, specialization, _ = binder(*args, **kwargs)
        options, signature, constexprs, attrs = kernel._pack_args(
            backend, kwargs, bound, specialization, None
        )
        compiled = triton.compile(
            ASTSource(kernel, signature, constexprs, attrs), target=target, options=options.__dict__
        )
    except Exception as exc:  # a shape that does not compile is a finding, not a crash
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return Resources(case.label(), arch, 0, 0, 0, False, 0, 0, 0, 0, 0.0, message)
    seconds = time.perf_counter() - begin
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
        cubin.write(compiled.asm["cubin"])
        cubin.flush()
        usage = subprocess.run(
            [_bin_tool("cuobjdump"), "-res-usage", cubin.name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    fields = dict(re.findall(r"(REG|STACK|LOCAL):(\d+)", usage))
    registers = int(fields.get("REG", 0))
    shared = int(compiled.metadata.shared)
    threads = case.shape.num_warps * 32
    by_registers = REGISTERS_PER_SM // max(1, _round_up(registers, 8) * threads)
    by_shared = SHARED_PER_SM[arch] // max(1, shared + 1024)  # the driver reserves 1 KiB
    by_threads = THREADS_PER_SM[arch] // threads
    ptx = compiled.asm["ptx"]
    return Resources(
        case=case.label(),
        arch=arch,
        registers=registers,
        # ptxas puts spilled registers in the stack frame (local memory, off chip).
        spilled_bytes=int(fields.get("STACK", 0)) + int(fields.get("LOCAL", 0)),
        shared_bytes=shared,
        fits_shared=shared <= SHARED_LIMIT[arch],
        programs_per_sm=min(by_registers, by_shared, by_threads),
        wgmma=ptx.count("wgmma.mma_async"),
        tcgen05=ptx.count("tcgen05.mma"),
        mma_sync=ptx.count("mma.sync"),
        compile_s=round(seconds, 2),
    )


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def candidate_cases(
    kind: int = tune.KIND_HALF, dim: int = 128, mean_length: int = 64
) -> list[Case]:
    """Every autotuner candidate the tuner would time for one 32-token query and for
    32 of them, on pages of ``mean_length`` tokens."""
    cases = []
    for n in (1, 32):
        packed = mt.pack_queries([np.zeros((32, dim), np.float32)] * n, torch.device("cpu"))
        key = mt.shape_key(packed, kind, dim, False, mean_length, 100_000)
        cases += [Case(kind, dim, n, 32, False, t) for t in tune.CANDIDATES if tune.applies(t, key)]
    return cases


def storage_cases() -> list[Case]:
    """Each storage kind at the dims real checkpoints use, with the fixed heuristic's
    shapes for short and long pages (what a search runs with autotuning off)."""
    cases = []
    for kind in PAGE_DTYPES:
        for dim in (96, 128, 320, 1024):
            for mean_length in (30.0, 600.0):
                shape = tune.default_tuning(mean_length, tune.packed_dim(dim))
                cases.append(Case(kind, dim, 1, 32, False, shape))
    return list(dict.fromkeys(cases))


def other_cases() -> list[Case]:
    """The pairs form, a 1,024-token query, and fast precision."""
    base = tune.Tuning(64, 4, 3)
    return [
        Case(tune.KIND_HALF, 128, 8, 32, True, base),
        Case(tune.KIND_INT8, 128, 8, 32, True, base),
        Case(tune.KIND_HALF, 128, 1, 1024, False, base),
        Case(tune.KIND_HALF, 128, 1, 32, False, base, exact=False),
        Case(tune.KIND_HALF, 128, 1, 32, False, tune.Tuning(64, 4, 3, presplit=True), exact=False),
    ]


def fallback_cases() -> list[Case]:
    """The last-resort shape at the widest dims, for one query and a 32-query batch
    (128-row query blocks): it must fit every GPU's shared memory."""
    return [
        Case(kind, dim, n, 32, False, tune.LAST_RESORT)
        for kind in PAGE_DTYPES
        for dim in (384, 1024)
        for n in (1, 32)
    ]


SETS = {
    "candidates": lambda: candidate_cases(),
    "candidates-384": lambda: candidate_cases(dim=384),
    "storage": storage_cases,
    "other": other_cases,
    "fallback": fallback_cases,
}


def report(cases: list[Case], arch: int, workers: int) -> list[Resources]:
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(compile_case, cases, [arch] * len(cases)))


def _print(rows: list[Resources]) -> None:
    header = f"{'launch':<66} {'regs':>4} {'spill':>5} {'smem KiB':>8} {'/SM':>3} {'mma':>12}"
    print(header)
    for r in rows:
        if r.error:
            print(f"{r.case:<66} does not compile: {r.error}")
            continue
        mma = (
            f"wgmma x{r.wgmma}"
            if r.wgmma
            else f"tcgen05 x{r.tcgen05}"
            if r.tcgen05
            else f"mma.sync x{r.mma_sync}"
            if r.mma_sync
            else "FMA"
        )
        over = "" if r.fits_shared else " (over the limit)"
        print(
            f"{r.case:<66} {r.registers:>4} {r.spilled_bytes:>5} {r.shared_bytes / 1024:>8.1f}"
            f" {r.programs_per_sm:>3} {mma:>12}{over}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, default=90, choices=sorted(SHARED_LIMIT))
    parser.add_argument("--sets", nargs="*", default=list(SETS), choices=list(SETS))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise SystemExit("unset TRITON_INTERPRET: the interpreter compiles nothing")
    import triton

    cases = [case for name in args.sets for case in SETS[name]()]
    print(f"MaxSim kernel for sm_{args.arch}, triton {triton.__version__}, {len(cases)} launches")
    rows = report(cases, args.arch, args.workers)
    _print(rows)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    sys.exit(1 if any(r.error for r in rows) else 0)


if __name__ == "__main__":
    main()
