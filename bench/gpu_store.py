"""Store-level GPU figures: exhaustive Store.search latency, search_many throughput and
peak device memory, parallel readers. Synthetic clustered vectors (no model on the GPU
machine); the 10M-token case runs on the index directly, since writing 2.6 GB of
vectors through SQLite would take most of a device session.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.search_bench import clustered, queries_for
from latestore import PrecomputedVectors, Store, StoreConfig
from latestore.index.late_index import LateInteractionIndex, SearchParams
from latestore.index.token_index import IndexParams


def _percentiles(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_ms": float(np.percentile(latencies, 50) * 1e3),
        "p95_ms": float(np.percentile(latencies, 95) * 1e3),
    }


def store_figures(n_pages: int = 20_000, tokens: int = 100, dim: int = 128) -> dict[str, Any]:
    rng = np.random.default_rng(3)
    pages, centres = clustered(rng, n_pages, dim, tokens, topics=max(50, n_pages // 20))
    queries = queries_for(rng, centres, 256)
    out: dict[str, Any] = {}
    config = StoreConfig(ivf_codec="none")  # no FAISS training: the GPU ranks exactly
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gpu.db"
        with Store.open(path, PrecomputedVectors(dim=dim, name="bench"), config=config) as store:
            start = time.perf_counter()
            for lo in range(0, len(pages), 4000):
                store.add_pages(pages[lo : lo + 4000])
            out["build_s"] = time.perf_counter() - start
            stats = store.stats()
            out["stats"] = {k: v for k, v in stats.items() if k != "index"}
            for q in queries[:5]:
                store.search(q, k=10)  # compile and warm
            latencies = []
            for q in queries[:100]:
                start = time.perf_counter()
                store.search(q, k=10)
                latencies.append(time.perf_counter() - start)
            out["search_exact_default"] = _percentiles(latencies)
            latencies = []
            for q in queries[:100]:
                start = time.perf_counter()
                store.search(q, k=10, device_exact=False, exhaustive_max_tokens=0)
                latencies.append(time.perf_counter() - start)
            out["search_candidates"] = _percentiles(latencies)
            out["search_many_256"] = _many(store, queries)
            out["parallel_readers"] = _threads(store, queries[:64])
    return out


def _many(store: Store, queries: list[np.ndarray]) -> dict[str, Any]:
    store.search_many(queries[:8], k=10)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    results = store.search_many(queries, k=10)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated()
    assert len(results) == len(queries) and all(len(r) == 10 for r in results)
    return {
        "qps": len(queries) / seconds,
        "seconds": seconds,
        "resident_bytes": base,
        "peak_bytes": peak,
        "peak_over_resident": peak / max(1, base),
    }


def _threads(store: Store, queries: list[np.ndarray]) -> dict[str, float]:
    out = {}
    for n_threads in (1, 4):
        chunks = [queries[i::n_threads] for i in range(n_threads)]

        def worker(chunk: list[np.ndarray]) -> None:
            for q in chunk:
                store.search(q, k=10)

        threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out[f"qps_{n_threads}_threads"] = len(queries) / (time.perf_counter() - start)
    return out


def index_figures(n_pages: int = 100_000, tokens: int = 100, dim: int = 128) -> dict[str, Any]:
    """search_many of 256 queries over 10M tokens, through the index (see module doc)."""
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((2000, dim)).astype(np.float32)
    index = LateInteractionIndex(dim, "float16", IndexParams(ivf_codec="none"), "cuda")
    lengths = rng.integers(tokens // 2, tokens * 3 // 2, size=n_pages)
    start = time.perf_counter()
    for lo in range(0, n_pages, 5000):
        ids = list(range(lo + 1, min(n_pages, lo + 5000) + 1))
        vectors = []
        for n in lengths[lo : lo + 5000]:
            chosen = rng.choice(len(centres), size=4, replace=False)
            v = centres[chosen[rng.integers(0, 4, size=n)]]
            vectors.append((v + 0.5 * rng.standard_normal(v.shape)).astype(np.float32))
        index.upsert(ids, vectors)
    build_s = time.perf_counter() - start
    queries = queries_for(rng, centres, 256)
    params = SearchParams()
    index.search(queries[:4], 10, params)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    rankings = index.search(queries, 10, params)
    seconds = time.perf_counter() - start
    assert all(len(r) == 10 for r in rankings)
    device = index.device_tokens
    assert device is not None
    # The candidate path that crashed before (torch token search, 256 queries at once).
    torch.cuda.reset_peak_memory_stats()
    cand_start = time.perf_counter()
    index.search(queries, 10, SearchParams(device_exact=False, exhaustive_max_tokens=0))
    cand_s = time.perf_counter() - cand_start
    return {
        "tokens": int(lengths.sum()),
        "build_s": build_s,
        "search_many_256_exact": {
            "qps": len(queries) / seconds,
            "resident_bytes": base,
            "peak_bytes": torch.cuda.max_memory_allocated(),
            "bytes_per_token_resident": device.resident_bytes() / device.ntotal,
            "vector_bytes_per_token": dim * 2,
        },
        "search_many_256_candidates": {
            "qps": len(queries) / cand_s,
            "peak_bytes": torch.cuda.max_memory_allocated(),
        },
    }
