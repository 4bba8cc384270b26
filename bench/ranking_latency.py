"""Search latency per mode (maxsim, lexical, hybrid before and after) in one run.

Builds a SQLite store from a collection's cached windowed vectors
(:mod:`bench.ranking_data`; the store holds exactly what ``windows=True`` writes) and
times ``Store.search`` with the query vectors and words given, ``k`` = 10, the modes
interleaved query by query in rotating order so that every mode sees the same load.

    python -m bench.ranking_latency /work/wt/rank-cache scifact-subset --queries 100
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.ranking_data import read
from latestore import HybridOptions

MODES: dict[str, dict[str, Any]] = {
    "maxsim": {"mode": "maxsim"},
    "lexical": {"mode": "lexical"},
    "hybrid before (rrf)": {
        "mode": "hybrid",
        "hybrid": HybridOptions(fusion="rrf", lexical_weight=0.5),
    },
    "hybrid after (convex)": {"mode": "hybrid"},
}


def main() -> None:
    from latestore import Page, PrecomputedVectors, Store

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("name")
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    cached = read(args.name, args.cache)
    collection = cached.collection
    per_page: list[list[np.ndarray]] = [[] for _ in collection.ids]
    for window, kept, page in zip(
        cached.windows, cached.own, cached.window_pages.tolist(), strict=True
    ):
        per_page[page].append(window[kept])
    path = args.cache / args.name / "latency.db"
    with Store.open(path, PrecomputedVectors(dim=384, name="minilm-windowed")) as store:
        if store.stats().pages != len(collection.ids):
            pages = [
                Page(text=t, vectors=np.concatenate(v), external_id=i)
                for i, t, v in zip(collection.ids, collection.texts, per_page, strict=True)
            ]
            for begin in range(0, len(pages), 250):
                store.upsert_pages(pages[begin : begin + 250])
        picked = [i for i, q in enumerate(cached.queries) if not q.startswith("train:")]
        picked = picked[: args.queries]
        names = list(MODES)
        for name in names:  # warm-up: index loaded, statements cached
            i = picked[0]
            words = collection.queries[cached.queries[i]]
            store.search(cached.query_vectors[i], k=10, lexical_text=words, **MODES[name])
        seconds: dict[str, list[float]] = {name: [] for name in names}
        load_before = os.getloadavg()[0]
        for turn, i in enumerate(picked):
            words = collection.queries[cached.queries[i]]
            for name in names[turn % len(names) :] + names[: turn % len(names)]:
                start = time.perf_counter()
                if name == "lexical":
                    store.search(words, k=10, mode="lexical")
                else:
                    store.search(cached.query_vectors[i], k=10, lexical_text=words, **MODES[name])
                seconds[name].append(time.perf_counter() - start)
        stats = store.stats()
    print(
        json.dumps(
            {
                "collection": args.name,
                "pages": stats.pages,
                "tokens": stats.tokens,
                "queries": len(picked),
                "load_average_before_after": [load_before, os.getloadavg()[0]],
                "cpus": os.cpu_count(),
                **{
                    name: {
                        "p50_ms": round(float(np.percentile(s, 50)) * 1000, 1),
                        "p95_ms": round(float(np.percentile(s, 95)) * 1000, 1),
                    }
                    for name, s in seconds.items()
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
