"""`make bench`: machine ceilings, MaxSim kernels, search latency/overlap, ingestion, compression.

Prints tables and writes everything (with the machine description) to
bench-results/bench-<time>.json. Never part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from bench import cache_bench, ceilings, host_overhead, maxsim_bench, scifact_bench, search_bench

ROOT = Path(__file__).resolve().parent.parent


def table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    print(f"\n## {title}\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = []
        for col in columns:
            value = row.get(col, "")
            cells.append(f"{value:.3g}" if isinstance(value, float) else str(value))
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[2_000, 20_000])
    parser.add_argument("--scifact", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--scifact-store", type=Path, default=ROOT / "build" / "scifact.db")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["maxsim", "search", "host", "scifact", "cache", "compression"],
    )
    args = parser.parse_args()

    result: dict[str, Any] = {
        "machine": ceilings.machine(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    ceil = ceilings.cpu_ceilings() | ceilings.gpu_ceilings()
    result["ceilings"] = ceil
    print("# latestore benchmark\n")
    print(json.dumps(result["machine"], indent=1))
    table("Machine ceilings", [ceil], list(ceil))

    if "maxsim" not in args.skip:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        rows = []
        for device in devices:
            for row in maxsim_bench.run(device):
                prefix = "gpu" if device == "cuda" else "cpu"
                row["frac_bandwidth"] = row["gbps"] / ceil[f"{prefix}_copy_gbps"]
                peak = ceil["gpu_fp32_gflops"] if device == "cuda" else ceil["cpu_fp32_gflops"]
                row["frac_flops"] = row["gflops"] / peak
                rows.append(row)
        result["maxsim"] = rows
        table(
            "MaxSim rerank (exact, float32 accumulation)",
            rows,
            ["case", "device", "dtype", "ms", "gbps", "gflops", "frac_bandwidth", "frac_flops"],
        )

    if "search" not in args.skip:
        rows = search_bench.synthetic(args.sizes)
        result["search_synthetic"] = rows
        table(
            "Store.search, synthetic clustered vectors (dim 128, ~100 tokens/page, 32-tok queries)",
            rows,
            [
                "corpus",
                "tokens",
                "index",
                "k_per_token",
                "nprobe",
                "n_rerank",
                "p50_ms",
                "p95_ms",
                "overlap10",
            ],
        )
        for row in rows:
            if "bytes_per_token" in row:
                print(f"{row['corpus']}: bytes/token on disk {row['bytes_per_token']}")

    if "host" not in args.skip:  # issue 11: the part of a search the GPU cannot speed up
        host = host_overhead.measure(n_pages=500, calls=1000)
        result["host_overhead"] = host
        spans = {"whole call: p50": host["p50_us"], "whole call: p95": host["p95_us"]}
        table(
            "One Store.search(query_vectors, k=10) without its ranking: host time, us "
            "(spans from cProfile, per call)",
            [{"part": part, "us": us} for part, us in (spans | host["spans_us"]).items()],
            ["part", "us"],
        )

    if "cache" not in args.skip and args.scifact_store.exists():
        rows = cache_bench.run(args.scifact_store, args.scifact)
        result["vector_cache"] = rows
        table(
            "SciFact store: vector cache in the heap vs on disk (fresh process each)",
            rows,
            list(rows[0]),
        )

    if "scifact" not in args.skip and (args.scifact / "corpus.jsonl").exists():
        sci = scifact_bench.run(
            args.scifact, args.scifact_store, compression="compression" not in args.skip
        )
        result["scifact"] = sci
        if "skipped" in sci:
            print(f"\nSciFact: {sci['skipped']}")
        else:
            table(
                "SciFact (MiniLM, 300 queries): search sweep",
                sci["sweep"],
                ["memory", "k_per_token", "nprobe", "n_rerank", "p50_ms", "p95_ms", "overlap10"],
            )
            table("SciFact ingestion split (300 docs)", [sci["ingestion"]], list(sci["ingestion"]))
            comp = [
                {
                    **c,
                    "bytes/token": c.get(
                        "bytes_per_token", c.get("bytes_per_token_of_unpooled", {})
                    ).get("total_bytes"),
                }
                for c in sci["compression"]
            ]
            table(
                "SciFact compression: bytes per (original) token vs quality",
                comp,
                ["variant", "ndcg10", "ndcg10_exhaustive", "overlap10", "bytes/token"],
            )

    out_dir = ROOT / "bench-results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
