"""`make gpu-check`'s benchmark: GPU kernels side by side, then store-level figures.

Run on a CUDA machine: ``python -m bench.gpu --out DIR``. Writes DIR/gpu_bench.json
after every section, so a run cut short still leaves what it measured.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench import gpu_kernels, gpu_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--no-sweep", action="store_true", help="skip the tuning sweep")
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench.gpu needs CUDA")
    args.out.mkdir(parents=True, exist_ok=True)
    props = torch.cuda.get_device_properties(0)
    result: dict[str, Any] = {
        "machine": {
            "gpu": props.name,
            "gpu_memory_gib": props.total_memory / 2**30,
            "sms": props.multi_processor_count,
            "torch": torch.__version__,
            "triton": __import__("triton").__version__,
            "python": platform.python_version(),
        }
    }
    # Most telling first: a run cut short by its time limit keeps those.
    sections: list[tuple[str, Callable[[], Any]]] = [
        ("copy_ceiling_gbps", gpu_kernels.copy_ceiling),
        ("store_2M_tokens", gpu_store.store_figures),
        *[
            (f"kernel {name}", lambda c=case: gpu_kernels.run_case(*c, sweep=not args.no_sweep))
            for case in gpu_kernels.CASES
            for name in [case[0]]
        ],
        ("index_10M_tokens", gpu_store.index_figures),
        ("many_queries_20M_tokens", gpu_kernels.many_queries),
    ]
    for name, run in sections:
        if args.only and not any(word in name for word in args.only):
            continue
        start = time.perf_counter()
        try:
            result[name] = run()
        except Exception:  # keep the other sections' figures
            result[name] = {"error": traceback.format_exc(limit=6)}
        took = time.perf_counter() - start
        print(f"[{took:6.1f} s] {name}: {json.dumps(result[name])[:1500]}", flush=True)
        (args.out / "gpu_bench.json").write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
