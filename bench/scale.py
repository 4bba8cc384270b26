"""How latestore's costs grow with the corpus: ``make bench-scale``.

Synthetic clustered 128-dim float16 tokens with planted answers (bench.scale_data),
streamed through ``add_pages`` with their vectors, at each size and storage tier. Each
size runs in fresh processes (bench.scale_child): one builds, one opens and searches.
Printed per size: build tokens/s by million, disk bytes per token by file, RSS after
open and after 100 searches, open + first search, default p50/p95 alone and with 4 and
16 concurrent searchers, exhaustive p50, overlap@10 against exhaustive and the planted
page's hit rate; then the growth exponent of each figure (the slope of log figure
against log tokens) and the machine (CPU, cores, load average before and after).

    python -m bench.scale [--sizes 1M,4M] [--big] [--tiers float16,int8] [--out FILE]
                          [--peers fast-plaid]

``--peers fast-plaid`` also builds and searches a fast-plaid index over the same corpus
at each size (bench.scale_fastplaid, in the virtualenv ``make fastplaid-venv`` makes;
skipped with a note when it is absent) and prints its row under latestore's.

``--big`` adds 16M and 64M to the default sizes (hours on a 2-core machine; 64M needs
about 20 GB of disk per tier). Environment: BENCH_SCALE_EXHAUSTIVE (exhaustive
queries per size, default 20), BENCH_SCALE_DIR (where the stores are built),
BENCH_SCALE_PROFILE (a folder: each phase runs under cProfile and its top functions by
own time are written there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.cpu import cpu_model
from bench.scale_peers import fast_plaid_row, fast_plaid_skip, show_fast_plaid

DEFAULT_SIZES = "1M,4M"
BIG_SIZES = "16M,64M"
GROWTH = (
    "build_tokens_per_s",
    "tokens_per_cpu_s",
    "peak_rss_build_mb",
    "disk_b_per_token",
    "rss_open_mb",
    "rss_after_searches_mb",
    "open_first_search_s",
    "p50_ms",
    "p95_ms",
    "cpu_p50_ms",
    "alone_qps",
    "c4_qps",
    "c16_qps",
    "exhaustive_p50_ms",
    "exhaustive_cpu_p50_ms",
)


def parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 10**3, "M": 10**6, "G": 10**9}.get(text[-1:], 1)
    return int(float(text.rstrip("KMG")) * scale)


def machine() -> dict[str, Any]:
    cpu = cpu_model(platform.processor())
    threads = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    return {"cpu": cpu, "cores": os.cpu_count(), "threads_env": threads}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def child(phase: str, folder: Path, tokens: int, tier: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.scale_child", phase, str(folder), str(tokens), tier]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{phase} {tokens} {tier} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def one_size(tokens: int, tier: str, root: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=root) as name:
        folder = Path(name)
        row: dict[str, Any] = {"size": tokens, "tier": tier, "load_before": load()}
        row.update(child("build", folder, tokens, tier))
        row["load_after_build"] = load()
        row.update(child("search", folder, tokens, tier))
        row["load_after"] = load()
    row["disk_b_per_token"] = round(sum(row["disk"].values()) / row["tokens"], 1)
    row["disk_b_per_token_by_file"] = {
        name: round(size / row["tokens"], 1) for name, size in row["disk"].items()
    }
    return row


def exponents(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Slope of log(figure) on log(tokens), for each figure measured at 2+ sizes."""
    out = {}
    for key in GROWTH:
        points = [(r["tokens"], r[key]) for r in rows if r.get(key)]
        if len({t for t, _ in points}) < 2:
            continue
        x = np.log([t for t, _ in points])
        y = np.log([v for _, v in points])
        out[key] = round(float(np.polyfit(x, y, 1)[0]), 2)
    return out


def show(row: dict[str, Any]) -> str:
    files = ", ".join(f"{k.split('/')[-1]} {v}" for k, v in row["disk_b_per_token_by_file"].items())
    return (
        f"{row['tokens'] / 1e6:.1f}M {row['tier']}: build {row['build_s']} s "
        f"({row['build_tokens_per_s']} tok/s; per million {row['tokens_per_s_by_million']}; "
        f"CPU {row['build_cpu_s']} s, {row['tokens_per_cpu_s']} tok/CPU-s, per million "
        f"{row['tokens_per_cpu_s_by_million']}; peak RSS {row['peak_rss_build_mb']} MB) | "
        f"disk {row['disk_b_per_token']} B/token "
        f"({files}) | RSS open {row['rss_open_mb']} MB, after 100 searches "
        f"{row['rss_after_searches_mb']} MB | open {row['open_s']} s, +first search "
        f"{row['open_first_search_s']} s (torch loaded at {row.get('torch_ready_s')} s) | "
        f"p50/p95 {row['p50_ms']}/{row['p95_ms']} ms "
        f"(CPU p50 {row.get('cpu_p50_ms')} ms), one at a time {row.get('alone_qps')} q/s; "
        f"beside a busy process p50 x{row.get('busy_over_alone_p50')}; "
        f"4 searchers {row['c4_p50_ms']}/{row['c4_p95_ms']} ms {row['c4_qps']} q/s; "
        f"16 searchers {row['c16_p50_ms']}/{row['c16_p95_ms']} ms {row['c16_qps']} q/s | "
        f"exhaustive p50 {row['exhaustive_p50_ms']} ms (CPU "
        f"{row.get('exhaustive_cpu_p50_ms')} ms) | overlap@10 {row['overlap10']} | "
        f"planted@10 {row['planted_at10']} | index {row['index']} | "
        f"load {row['load_before']} -> {row['load_after']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="token counts, e.g. 1M,4M")
    parser.add_argument("--big", action="store_true", help=f"also {BIG_SIZES}")
    parser.add_argument("--tiers", default="float16", help="vector_dtype per run: float16,int8")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--peers", default="", help="also run these libraries: fast-plaid")
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    if args.big:
        sizes += [parse_size(s) for s in BIG_SIZES.split(",") if parse_size(s) not in sizes]
    root = Path(os.environ.get("BENCH_SCALE_DIR", tempfile.gettempdir()))
    report: dict[str, Any] = {"machine": machine(), "started": time.strftime("%FT%TZ")}
    print(json.dumps(report["machine"]), flush=True)
    peers = "fast-plaid" in args.peers.split(",") and not fast_plaid_skip()
    rows, peer_rows = [], []
    for tier in args.tiers.split(","):
        tier_rows = []
        for tokens in sizes:
            row = one_size(tokens, tier, root)
            print(show(row), flush=True)
            tier_rows.append(row)
            if peers and tier == args.tiers.split(",")[0]:  # one fast-plaid run a size
                peer_rows.append(fast_plaid_row(tokens, root))
                print(show_fast_plaid(peer_rows[-1]), flush=True)
        growth = exponents(tier_rows)
        print(f"growth exponents ({tier}): {json.dumps(growth)}", flush=True)
        rows += tier_rows
        report[f"exponents_{tier}"] = growth
    report["rows"] = rows
    if peer_rows:
        report["fast_plaid_rows"] = peer_rows
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
