"""Search latency per mode on a filled store, the modes interleaved query by query.

On a shared machine the load changes from minute to minute; running maxsim, lexical
and hybrid on the same query back to back (in rotating order) exposes every mode to
the same load, so their ratios mean something even when the absolute figures drift.

    python bench/mode_latency.py /tmp/scifact.db ../shared/data/scifact --queries 100
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from latestore import Store
from latestore.evaluation import load_beir

MODES = ("maxsim", "lexical", "hybrid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("beir", type=Path, help="BEIR folder whose queries to run")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    data = load_beir(args.beir)
    texts = list(data.queries.values())[: args.queries]
    with Store.open(args.store) as store:
        vectors = store.encoder.encode_queries(texts)
        for mode in MODES:  # warm-up: index loaded, statements cached
            store.search(vectors[0], k=args.k, mode=mode, lexical_text=texts[0])
        seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
        for i, (query, words) in enumerate(zip(vectors, texts, strict=True)):
            for mode in MODES[i % 3 :] + MODES[: i % 3]:
                start = time.perf_counter()
                store.search(query, k=args.k, mode=mode, lexical_text=words)
                seconds[mode].append(time.perf_counter() - start)
    load = os.getloadavg()
    print(
        json.dumps(
            {
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                f"load average {load[0]:.1f}",
                "torch_threads": os.environ.get("OMP_NUM_THREADS", "default"),
                "queries": len(texts),
                "k": args.k,
                **{
                    mode: {
                        "p50_ms": round(float(np.percentile(s, 50)) * 1000, 1),
                        "p95_ms": round(float(np.percentile(s, 95)) * 1000, 1),
                    }
                    for mode, s in seconds.items()
                },
            }
        )
    )


if __name__ == "__main__":
    main()
