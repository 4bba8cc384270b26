"""Search latency under load: thread counts per call against OpenMP's defaults, one run.

    python -m bench.load_bench STORE.db [--queries 40]

The store is one written by ``bench.open_bench build`` (its queries are planted). For
each thread policy, in one process:

* ``alone``: the queries one at a time, p50 / p95 latency;
* ``busy``: the same while one other process spins on a core;
* ``concurrent-4`` / ``concurrent-16``: the queries spread over 4 and 16 threads of
  this process (as ``serve`` runs them), throughput against one at a time.

Policies: ``per_call`` (latestore.index.threads: one intra-op thread per search on the
candidate path) and ``openmp_default`` (every op on every core, what latestore did
before). Default settings (FAISS candidates + exact rerank); the machine and its load
are printed with each row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench.open_bench import DIM, machine, query_for


@contextmanager
def policy(name: str) -> Iterator[None]:
    """``openmp_default``: every search call gets every core, as before."""
    from latestore.index import threads

    chosen = threads.threads_for
    if name == "openmp_default":
        threads.threads_for = lambda exhaustive, in_flight: threads.cores()  # type: ignore[assignment]
    try:
        yield
    finally:
        threads.threads_for = chosen  # type: ignore[assignment]


@contextmanager
def busy_process() -> Iterator[None]:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        spinner.kill()
        spinner.wait()


def latencies(store: Any, queries: list[np.ndarray]) -> list[float]:
    out = []
    for q in queries:
        start = time.perf_counter()
        store.search(q, k=10)
        out.append((time.perf_counter() - start) * 1000)
    return out


def throughput(store: Any, queries: list[np.ndarray], workers: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda q: store.search(q, k=10), queries))
    return len(queries) / (time.perf_counter() - start)


def row(name: str, values: list[float] | float, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"case": name, **extra, "loadavg": os.getloadavg()}
    if isinstance(values, list):
        ordered = sorted(values)
        out["p50_ms"] = round(statistics.median(values), 1)
        out["p95_ms"] = round(ordered[int(0.95 * (len(ordered) - 1))], 1)
    else:
        out["queries_per_s"] = round(values, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store", type=Path)
    parser.add_argument("--queries", type=int, default=40)
    args = parser.parse_args()
    from latestore import PrecomputedVectors, Store

    queries = [query_for(i) for i in range(args.queries)]
    print(json.dumps({"machine": machine()}), flush=True)
    with Store.open(args.store, PrecomputedVectors(dim=DIM)) as store:
        latencies(store, queries[:5])  # warm: imports, first touches
        for name in ("per_call", "openmp_default"):
            with policy(name):
                alone = latencies(store, queries)
                print(json.dumps(row("alone", alone, policy=name)), flush=True)
                with busy_process():
                    busy = latencies(store, queries)
                ratio = statistics.median(busy) / statistics.median(alone)
                print(
                    json.dumps(row("busy", busy, policy=name, p50_over_alone=round(ratio, 2))),
                    flush=True,
                )
                serial = throughput(store, queries, 1)
                print(json.dumps(row("serial", serial, policy=name)), flush=True)
                for workers in (4, 16):
                    rate = throughput(store, queries, workers)
                    print(
                        json.dumps(
                            row(
                                f"concurrent-{workers}",
                                rate,
                                policy=name,
                                over_serial=round(rate / serial, 2),
                            )
                        ),
                        flush=True,
                    )


if __name__ == "__main__":
    main()
