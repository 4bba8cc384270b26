"""Store-level GPU figures: exhaustive Store.search latency, search_many throughput and
peak device memory, parallel readers. Synthetic clustered vectors (no model on the GPU
machine); the 10M-token case runs on the resident device pages directly, since
writing 2.6 GB of vectors through SQLite would take most of a device session.
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
from latestore import IndexConfig, PrecomputedVectors, SearchTuning, Store, StoreConfig
from latestore.index.device_rank import exact_topk
from latestore.index.device_search import DeviceTokenSearch


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
    config = StoreConfig(
        index=IndexConfig(ivf_codec="none")
    )  # no FAISS training: the GPU ranks exactly
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gpu.db"
        with Store.open(path, PrecomputedVectors(dim=dim, name="bench"), config=config) as store:
            start = time.perf_counter()
            for lo in range(0, len(pages), 4000):
                store.add_pages(pages[lo : lo + 4000])
            out["build_s"] = time.perf_counter() - start
            stats = store.stats()
            out["stats"] = stats.model_dump(exclude={"index"})
            for q in queries[:5]:
                store.search(q, k=10)  # compile and warm
            latencies = []
            for q in queries[:100]:
                start = time.perf_counter()
                store.search(q, k=10)
                latencies.append(time.perf_counter() - start)
            out["search_exact_default"] = _percentiles(latencies)
            out["host_split"] = host_split(store, queries[:50])
            latencies = []
            for q in queries[:100]:
                start = time.perf_counter()
                store.search(
                    q, k=10, tuning=SearchTuning(device_exact=False, exhaustive_max_tokens=0)
                )
                latencies.append(time.perf_counter() - start)
            out["search_candidates"] = _percentiles(latencies)
            out["search_many_256"] = _many(store, queries)
            out["parallel_readers"] = _threads(store, queries[:64])
    return out


def host_split(store: Store, queries: list[np.ndarray], calls: int = 200) -> dict[str, Any]:
    """Where one exhaustive Store.search's time goes on the GPU (issue 11: p50 <= 1 ms).

    p50 of the same queries at each layer, CUDA-synchronised: the whole call, the
    index's search (plan + ranking), exact_topk (the device ranking with its top-k and
    copy back), the kernel alone on pre-packed queries, and the query packing. The
    differences are the host parts; cProfile's top functions of the whole call say
    which.
    """
    import cProfile
    import pstats

    from latestore.index import maxsim_launch

    index = store._sync.index
    device = index.device_tokens
    assert device is not None, "the pages are not resident on the device"
    params = store.config.search_params()
    unit = [(q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32) for q in queries]
    addresses = device.addresses()
    packed = [maxsim_launch.pack_queries([q], device.device) for q in unit]

    def sync() -> None:
        if device.device.type == "cuda":  # a CPU run (a smoke test) has nothing to wait for
            torch.cuda.synchronize()

    def p50(call: Any) -> float:
        for i in range(5):
            call(i % len(queries))
        sync()
        latencies = []
        for i in range(calls):
            start = time.perf_counter()
            call(i % len(queries))
            sync()
            latencies.append(time.perf_counter() - start)
        return float(np.percentile(latencies, 50) * 1e3)

    split = {
        "store_search_ms": p50(lambda i: store.search(queries[i], k=10)),
        "index_search_ms": p50(lambda i: index.search([unit[i]], 10, params)),
        "exact_topk_ms": p50(lambda i: exact_topk(device, [unit[i]], 10)),
        "kernel_only_ms": p50(
            lambda i: maxsim_launch.maxsim_shared(
                packed[i],
                device.rows,
                addresses.starts,
                addresses.lengths,
                device.scales,
                mean_length=addresses.mean_length,
            )
        ),
        "pack_queries_ms": p50(lambda i: maxsim_launch.pack_queries([unit[i]], device.device)),
    }
    split["host_around_index_ms"] = split["store_search_ms"] - split["index_search_ms"]
    split["plan_around_topk_ms"] = split["index_search_ms"] - split["exact_topk_ms"]
    split["topk_around_kernel_ms"] = split["exact_topk_ms"] - split["kernel_only_ms"]
    profile = cProfile.Profile()
    profile.enable()
    for i in range(calls):
        store.search(queries[i % len(queries)], k=10)
    sync()
    profile.disable()
    rows = sorted(
        pstats.Stats(profile).stats.items(),  # type: ignore[attr-defined]
        key=lambda item: -item[1][2],
    )[:25]
    split["profile_top_tottime_us_per_call"] = [
        f"{tot / calls * 1e6:8.1f} {cum / calls * 1e6:8.1f}  {func} ({Path(path).name}:{line})"
        for (path, line, func), (_, _, tot, cum, _) in rows
    ]
    return split


def _many(store: Store, queries: list[np.ndarray]) -> dict[str, Any]:
    first = time.perf_counter()
    store.search_many(queries, k=10)  # the same shape: picks its launch shape once
    first_s = time.perf_counter() - first
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
        "first_call_s": first_s,
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
    """search_many of 256 queries over 10M tokens on the resident pages (see module doc).

    Pages go straight into the device matrix the store ranks from; the store's exact
    plan is this same exact_topk call.
    """
    gen = torch.Generator(device="cuda").manual_seed(5)
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((2000, dim)).astype(np.float32)
    centres_d = torch.from_numpy(centres).cuda()
    lengths = rng.integers(tokens // 2, tokens * 3 // 2, size=n_pages)
    device = DeviceTokenSearch(dim, "cuda", dtype=torch.float16)
    device.reserve(int(lengths.sum()))
    start = time.perf_counter()
    for lo in range(0, n_pages, 10_000):
        chunk = lengths[lo : lo + 10_000]
        n = int(chunk.sum())
        topics = torch.randint(0, len(centres), (n,), device="cuda", generator=gen)
        noise = torch.randn((n, dim), device="cuda", generator=gen)
        rows = torch.nn.functional.normalize(centres_d[topics] + 0.5 * noise, dim=1)
        host = rows.cpu().numpy()
        pages = np.split(host, np.cumsum(chunk)[:-1])
        device.add(list(range(lo + 1, lo + 1 + len(chunk))), pages)
    build_s = time.perf_counter() - start
    queries = [q / np.linalg.norm(q, axis=1, keepdims=True) for q in queries_for(rng, centres, 256)]
    exact_topk(device, queries, 10)  # picks its launch shape
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    rankings = exact_topk(device, queries, 10)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated()
    assert all(len(r) == 10 for r in rankings)
    one = []
    for q in queries[:20]:
        begin = time.perf_counter()
        exact_topk(device, [q], 10)
        one.append(time.perf_counter() - begin)
    # The candidate token search that crashed before at this size (128 GiB asked).
    torch.cuda.reset_peak_memory_stats()
    cand_start = time.perf_counter()
    device.search(np.concatenate(queries), 128)
    cand_s = time.perf_counter() - cand_start
    return {
        "tokens": device.ntotal,
        "build_s": build_s,
        "search_many_256_exact": {
            "qps": len(queries) / seconds,
            "resident_bytes": base,
            "peak_bytes": peak,
            "peak_over_resident": peak / max(1, base),
            "bytes_per_token_resident": device.resident_bytes() / device.ntotal,
            "vector_bytes_per_token": dim * 2,
        },
        "one_query": _percentiles(one),
        "candidate_token_search_256_queries": {
            "seconds": cand_s,
            "peak_bytes": torch.cuda.max_memory_allocated(),
        },
    }
