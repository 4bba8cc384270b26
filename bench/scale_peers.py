"""Other libraries beside latestore in bench.scale: fast-plaid, in its own virtualenv.

fast-plaid pins a torch of its own, so bench.scale_fastplaid runs under
``build/fastplaid-venv`` (``make fastplaid-venv``), one process to build and a fresh one
to open and search, like bench.scale_child. Both read the same ``Corpus(tokens)``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FASTPLAID_PYTHON = REPO / "build" / "fastplaid-venv" / "bin" / "python"
# One thread, as latestore's figures are read: torch's pools and fast-plaid's Rust pool.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1"}


def fast_plaid_skip() -> bool:
    """True (and say why) when fast-plaid's virtualenv is not there."""
    if FASTPLAID_PYTHON.exists():
        return False
    print(f"fast-plaid skipped: no {FASTPLAID_PYTHON} (run `make fastplaid-venv`)", flush=True)
    return True


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _phase(*args: str) -> dict[str, Any]:
    command = [str(FASTPLAID_PYTHON), "-m", "bench.scale_fastplaid", *args]
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"fast-plaid {args[0]} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def fast_plaid_row(tokens: int, root: Path, nbits: int = 4) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=root) as name:
        row: dict[str, Any] = {"size": tokens, "load_before": _load()}
        row.update(_phase("build", name, str(tokens), str(nbits)))
        row["load_after_build"] = _load()
        row.update(_phase("search", name, str(tokens)))
        row["load_after"] = _load()
    return row


def show_fast_plaid(row: dict[str, Any]) -> str:
    searches = " | ".join(
        f"{name} (n_full_scores {s['n_full_scores']}, n_ivf_probe {s['n_ivf_probe']}): "
        f"p50/p95 {s['p50_ms']}/{s['p95_ms']} ms (CPU p50 {s['cpu_p50_ms']} ms), "
        f"overlap@10 {s['overlap10']}, planted@10 {s['planted_at10']}"
        for name, s in ((n, row[n]) for n in ("default", "nfs256"))
    )
    return (
        f"{row['tokens'] / 1e6:.1f}M fast-plaid nbits {row['nbits']}: build {row['build_s']} s "
        f"({row['build_tokens_per_s']} tok/s; CPU {row['build_cpu_s']} s, "
        f"{row['tokens_per_cpu_s']} tok/CPU-s; k-means {row['kmeans_s']} s, CPU "
        f"{row['kmeans_cpu_s']} s; RSS with corpus {row['rss_corpus_mb']} MB, "
        f"peak {row['peak_rss_build_mb']} MB) | disk {row['disk_b_per_token']} B/token | "
        f"RSS open {row['rss_open_mb']} MB, after searches {row['rss_after_searches_mb']} MB | "
        f"open {row['open_s']} s, +first search {row['open_first_search_s']} s | {searches} | "
        f"{row['fast_plaid']}, one thread | load {row['load_before']} -> {row['load_after']}"
    )
