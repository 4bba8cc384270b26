"""Sharded search on Ray: build time, latency, throughput and memory for 1, 2, 4 shards.

A synthetic clustered corpus (pages about a few topics, tokens scattered around topic
centres, as real token vectors are) is written once into a fresh PostgreSQL database;
then, for each shard count, a ShardedStore is opened on it and measured:

* build: starting the actors, loading their slices from SQL, training and filling
  each shard's FAISS index (in parallel across shards);
* search p50/p95 with one client (k=10, default plan), filtered (10% of pages), and
  exhaustive exact MaxSim; equality of exhaustive results with the 1-shard store;
* throughput with ``--clients`` concurrent client threads;
* memory per shard: resident set of each actor process and its vector bytes.

Run (not part of ``make test``)::

    LATESTORE_BENCH_PG=postgresql+psycopg://user@host/db python -m bench.ray_shards
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray

from bench.cpu import cpu_model
from latestore import Page, PrecomputedVectors, StorageConfig, StoreConfig
from latestore.distributed import ShardedStore
from latestore.distributed.coordinator_sync import SqlOnlyStore
from tests.postgres import fresh_database


def corpus(
    rng: np.random.Generator, centres: np.ndarray, n_pages: int, tokens: int, start: int
) -> list[Page]:
    pages = []
    dim = centres.shape[1]
    for i in range(start, start + n_pages):
        chosen = rng.choice(len(centres), size=4, replace=False)
        n = int(rng.integers(tokens // 2, tokens * 3 // 2))
        v = centres[chosen[rng.integers(0, 4, size=n)]] + 0.5 * rng.standard_normal((n, dim))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        pages.append(
            Page(vectors=v.astype(np.float16), external_id=str(i), metadata={"bucket": i % 10})
        )
    return pages


def queries(rng: np.random.Generator, centres: np.ndarray, n: int, tokens: int) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        chosen = rng.choice(len(centres), size=2, replace=False)
        q = centres[chosen[rng.integers(0, 2, size=tokens)]] + 0.5 * rng.standard_normal(
            (tokens, centres.shape[1])
        )
        out.append((q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32))
    return out


def load(url: str, args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((args.topics, args.dim))
    n_pages = args.tokens // args.page_tokens
    started = time.perf_counter()
    total = 0
    config = StoreConfig(storage=StorageConfig(vector_dtype="float16"))
    with SqlOnlyStore.open(url, PrecomputedVectors(args.dim), config=config) as store:
        for start in range(0, n_pages, 500):
            pages = corpus(rng, centres, min(500, n_pages - start), args.page_tokens, start)
            total += sum(len(p.vectors) for p in pages if p.vectors is not None)
            store.add_pages(pages)
    return {
        "pages": n_pages,
        "tokens": total,
        "load_seconds": round(time.perf_counter() - started, 1),
        "centres": centres,
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered) * 1e3, 1), "p95_ms": round(p95 * 1e3, 1)}


def timed(
    store: ShardedStore, qs: list[np.ndarray], **kwargs: Any
) -> tuple[list[float], list[Any]]:
    times, results = [], []
    for q in qs:
        t = time.perf_counter()
        results.append(store.search(q, k=10, **kwargs))
        times.append(time.perf_counter() - t)
    return times, results


def throughput(store: ShardedStore, qs: list[np.ndarray], clients: int, seconds: float) -> float:
    done = [0] * clients
    stop = time.monotonic() + seconds

    def client(c: int) -> None:
        i = c
        while time.monotonic() < stop:
            store.search(qs[i % len(qs)], k=10)
            done[c] += 1
            i += clients

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return round(sum(done) / (time.perf_counter() - t), 2)


def measure(
    url: str, shards: int, qs: list[np.ndarray], args: argparse.Namespace
) -> dict[str, Any]:
    started = time.perf_counter()
    with ShardedStore.open(url, shards=shards, timeout_s=600) as store:
        build = time.perf_counter() - started
        shard_stats = store.shards.stats()
        timed(store, qs[:2])  # warm-up
        plain, _ = timed(store, qs)
        filtered, _ = timed(store, qs[: args.exact_queries * 2], filter={"bucket": 3})
        sql_filter = []
        for _ in range(5):  # the coordinator's share of a filtered search: SQL to ids
            t = time.perf_counter()
            store.page_ids({"bucket": 3})
            sql_filter.append(time.perf_counter() - t)
        exact, exact_hits = timed(store, qs[: args.exact_queries], exhaustive=True)
        qps = throughput(store, qs, args.clients, args.seconds)
    return {
        "shards": shards,
        "build_s": round(build, 1),
        "search": percentiles(plain),
        "filtered_10pct": percentiles(filtered),
        "filter_sql_ms": round(statistics.median(sql_filter) * 1e3, 1),
        "exhaustive": percentiles(exact),
        "qps_clients": {"clients": args.clients, "qps": qps},
        "per_shard": [
            {
                "pages": s["pages"],
                "tokens": s["tokens"],
                "vector_mb": round(s["vector_bytes"] / 2**20),
                "rss_mb": round(s["rss_bytes"] / 2**20),
                "load_s": s["load_seconds"],
            }
            for s in shard_stats
        ],
        "exhaustive_rankings": [[(h.page_id, h.score) for h in hits] for hits in exact_hits],
    }


def machine() -> dict[str, Any]:
    return {
        "cpu": cpu_model("unknown"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "ray": ray.__version__,
        "note": "2 vCPUs shared with other jobs; no GPU",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=5_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--page-tokens", type=int, default=250)
    parser.add_argument("--topics", type=int, default=64)
    parser.add_argument("--shards", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--query-tokens", type=int, default=32)
    parser.add_argument("--exact-queries", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--out", type=Path, default=Path("bench-results/ray_shards.json"))
    args = parser.parse_args()
    admin = os.environ.get("LATESTORE_BENCH_PG") or os.environ.get("LATESTORE_TEST_PG_URL")
    if not admin:
        raise SystemExit("set LATESTORE_BENCH_PG to a PostgreSQL URL that may create databases")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR")
    results: dict[str, Any] = {"machine": machine(), "runs": []}
    with fresh_database(admin) as url:
        loaded = load(url, args)
        centres = loaded.pop("centres")
        results["corpus"] = {**loaded, "dim": args.dim, "dtype": "float16"}
        print(json.dumps(results["corpus"]), flush=True)
        qs = queries(np.random.default_rng(11), centres, args.queries, args.query_tokens)
        for shards in args.shards:
            run = measure(url, shards, qs, args)
            results["runs"].append(run)
            shown = {k: v for k, v in run.items() if k != "exhaustive_rankings"}
            print(json.dumps(shown), flush=True)
    reference = results["runs"][0]["exhaustive_rankings"]
    for run in results["runs"]:
        run["exhaustive_equal_to_first"] = run.pop("exhaustive_rankings") == reference
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps({r["shards"]: r["exhaustive_equal_to_first"] for r in results["runs"]}))
    print(json.dumps(results["machine"]))


if __name__ == "__main__":
    main()
