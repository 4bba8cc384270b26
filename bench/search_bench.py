"""End-to-end Store.search latency and overlap@10 with exhaustive MaxSim.

Synthetic corpora are clustered (pages about a few topics, tokens scattered around topic
centres), which is how real token vectors behave; uniform random vectors would make every
page equally (ir)relevant and say nothing about an index.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from latestore import Page, PrecomputedVectors, SearchTuning, Store, StoreConfig
from latestore.store.footprint import disk_footprint

SWEEP = [  # (k_per_token, nprobe, n_rerank)
    (64, 16, 128),
    (128, 16, 256),
    (128, 32, 256),
    (256, 32, 512),
]


def clustered(
    rng: np.random.Generator, n_pages: int, dim: int, tokens: int, topics: int
) -> tuple[list[Page], np.ndarray]:
    centres = rng.standard_normal((topics, dim)).astype(np.float32)
    pages = []
    for i in range(n_pages):
        chosen = rng.choice(topics, size=4, replace=False)
        n = int(rng.integers(tokens // 2, tokens * 3 // 2))
        vectors = centres[chosen[rng.integers(0, 4, size=n)]] + 0.5 * rng.standard_normal(
            (n, dim)
        ).astype(np.float32)
        pages.append(Page(vectors=vectors, external_id=str(i)))
    return pages, centres


def queries_for(
    rng: np.random.Generator, centres: np.ndarray, n: int, q_tokens: int = 32
) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        chosen = rng.choice(len(centres), size=3, replace=False)
        topics = chosen[rng.integers(0, 3, size=q_tokens)]
        out.append(
            centres[topics]
            + 0.5 * rng.standard_normal((q_tokens, centres.shape[1])).astype(np.float32)
        )
    return out


def sweep_store(
    store: Store, queries: list[Any], sweep: list[tuple[int, int, int]]
) -> list[dict[str, Any]]:
    exact = [
        [h.page_id for h in hits] for hits in store.search_many(queries, k=10, exhaustive=True)
    ]
    rows = []
    for k_tok, nprobe, n_rerank in sweep:
        latencies, overlaps = [], []
        for query, truth in zip(queries, exact, strict=True):
            start = time.perf_counter()
            hits = store.search(
                query,
                k=10,
                tuning=SearchTuning(
                    k_per_token=k_tok, nprobe=nprobe, n_rerank=n_rerank, exhaustive_max_tokens=0
                ),
            )
            latencies.append(time.perf_counter() - start)
            overlaps.append(len({h.page_id for h in hits} & set(truth)) / max(1, len(truth)))
        rows.append(
            {
                "k_per_token": k_tok,
                "nprobe": nprobe,
                "n_rerank": n_rerank,
                "p50_ms": float(np.percentile(latencies, 50) * 1e3),
                "p95_ms": float(np.percentile(latencies, 95) * 1e3),
                "overlap10": float(np.mean(overlaps)),
            }
        )
    return rows


def synthetic(
    sizes: list[int], dim: int = 128, tokens: int = 100, n_queries: int = 50
) -> list[dict[str, Any]]:
    rows = []
    for n_pages in sizes:
        rng = np.random.default_rng(n_pages)
        pages, centres = clustered(rng, n_pages, dim, tokens, topics=max(50, n_pages // 20))
        queries = queries_for(rng, centres, n_queries)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.db"
            with Store.open(
                path, PrecomputedVectors(dim=dim, name="bench"), config=StoreConfig()
            ) as store:
                start = time.perf_counter()
                for lo in range(0, len(pages), 2000):
                    store.add_pages(pages[lo : lo + 2000])
                build_s = time.perf_counter() - start
                stats = store.stats()
                for row in sweep_store(store, queries, SWEEP):
                    rows.append(
                        {
                            "corpus": f"synthetic {n_pages} pages",
                            "tokens": stats.tokens,
                            "index": stats.index["kind"],
                            "build_s": build_s,
                            **row,
                        }
                    )
            footprint = disk_footprint(path)
            rows[-1]["bytes_per_token"] = {k: v / stats.tokens for k, v in footprint.items()}
    return rows
