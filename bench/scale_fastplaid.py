"""fast-plaid over bench.scale's corpus, in its own virtualenv (``make fastplaid-venv``).

    build/fastplaid-venv/bin/python -m bench.scale_fastplaid build  FOLDER TOKENS [NBITS]
    build/fastplaid-venv/bin/python -m bench.scale_fastplaid search FOLDER TOKENS

Each prints one JSON line, as bench.scale_child does for latestore. It never imports
latestore (fast-plaid pins a torch of its own); the corpus and the 100 planted queries
come from the same ``Corpus(tokens)`` (bench.scale_data needs only numpy), so both
libraries index the same float16 vectors and answer the same queries.

``build`` generates the whole corpus first (fast-plaid's ``create`` takes every page at
once, so holding it is part of its cost: the RSS before ``create`` is reported too),
times ``create`` on CPU, then computes the exact MaxSim top 10 of the first
BENCH_SCALE_EXHAUSTIVE queries (default 20) with numpy over the same float16 vectors
(after the build figures are taken). ``search`` opens the index in a fresh process and
runs the 100 queries one at a time with fast-plaid's default search settings and with
``n_full_scores=256``. One thread throughout: torch.set_num_threads(1), and the parent
sets OMP_NUM_THREADS, MKL_NUM_THREADS and RAYON_NUM_THREADS (fast-plaid's Rust side)
to 1.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from fast_plaid import search as fp_search

from bench.scale_data import Corpus

EXHAUSTIVE_QUERIES = int(os.environ.get("BENCH_SCALE_EXHAUSTIVE", "20"))
# fast-plaid 1.7.0's search defaults, then the issue's cheaper setting.
SEARCH_SETTINGS = {
    "default": {"n_full_scores": 4096, "n_ivf_probe": 8},
    "nfs256": {"n_full_scores": 256, "n_ivf_probe": 8},
}


def memory_mb() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            out[name] = round(int(value.split()[0]) / 1024, 1)
    return out


def index_folder(folder: Path) -> Path:
    return folder / "fast-plaid"


def build(folder: Path, tokens: int, nbits: int) -> dict[str, Any]:
    corpus = Corpus(tokens)
    pages: list[npt.NDArray[np.float16]] = []
    made = 0
    for batch in corpus.batches():
        pages.extend(batch)
        made += sum(len(p) for p in batch)
    queries = sorted(corpus.queries)
    np.save(folder / "queries.npy", np.stack([corpus.queries[q] for q in queries]))
    np.save(folder / "planted.npy", np.asarray(queries, dtype=np.int64))
    rss_corpus = memory_mb()["VmRSS"]
    tensors = [torch.from_numpy(p) for p in pages]  # no copy: views of the float16 pages
    kmeans = _time_kmeans()
    start, cpu_start = time.perf_counter(), time.process_time()
    index = fp_search.FastPlaid(index=str(index_folder(folder)), device="cpu")
    index.create(documents_embeddings=tensors, nbits=nbits)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    peak = memory_mb()["VmHWM"]
    index.close()
    disk = {
        str(p.relative_to(index_folder(folder))): p.stat().st_size
        for p in sorted(index_folder(folder).rglob("*"))
        if p.is_file()
    }
    exact = exact_top10(pages, np.load(folder / "queries.npy")[:EXHAUSTIVE_QUERIES])
    np.save(folder / "exact.npy", exact)
    return {
        "tokens": made,
        "pages": len(pages),
        "nbits": nbits,
        "build_s": round(seconds, 1),
        "build_tokens_per_s": round(made / seconds),
        "build_cpu_s": round(cpu_seconds, 1),
        "tokens_per_cpu_s": round(made / cpu_seconds),
        "kmeans_s": round(kmeans[0], 1),
        "kmeans_cpu_s": round(kmeans[1], 1),
        "rss_corpus_mb": rss_corpus,
        "peak_rss_build_mb": peak,
        "disk": disk,
        "disk_b_per_token": round(sum(disk.values()) / made, 1),
    }


def _time_kmeans() -> list[float]:
    """Wall and CPU seconds spent in fast-plaid's k-means, the rest of create being the
    Rust side's assignment and compression: wraps the function ``create`` calls."""
    spent = [0.0, 0.0]
    module = fp_search.fast_plaid
    original = module.compute_kmeans

    def timed(*args: Any, **kwargs: Any) -> Any:
        start, cpu_start = time.perf_counter(), time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start
            spent[1] += time.process_time() - cpu_start

    module.compute_kmeans = timed
    return spent


def exact_top10(
    pages: list[npt.NDArray[np.float16]], queries: npt.NDArray[np.float32]
) -> npt.NDArray[np.int64]:
    """Exhaustive MaxSim top 10 page numbers per query, a few hundred pages at a time."""
    n_queries, q_tokens, dim = queries.shape
    flat = queries.reshape(-1, dim)
    scores = np.empty((n_queries, len(pages)), dtype=np.float32)
    step = 512
    for first in range(0, len(pages), step):
        group = pages[first : first + step]
        sims = flat @ np.concatenate(group).astype(np.float32).T  # (queries x tokens, tokens)
        starts = np.cumsum([0] + [len(p) for p in group[:-1]])
        best = np.maximum.reduceat(sims, starts, axis=1)  # max over each page's tokens
        scores[:, first : first + len(group)] = best.reshape(n_queries, q_tokens, -1).sum(1)
    top: npt.NDArray[np.int64] = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    return top


def search(folder: Path, tokens: int) -> dict[str, Any]:
    queries = [torch.from_numpy(q) for q in np.load(folder / "queries.npy")]
    planted = np.load(folder / "planted.npy")
    exact = np.load(folder / "exact.npy")
    start = time.perf_counter()
    index = fp_search.FastPlaid(index=str(index_folder(folder)), device="cpu")
    opened = time.perf_counter() - start
    rss_open = memory_mb()["VmRSS"]
    index.search(queries_embeddings=queries[0], top_k=10, show_progress=False)
    out: dict[str, Any] = {
        "open_s": round(opened, 2),
        "open_first_search_s": round(time.perf_counter() - start, 2),
        "rss_open_mb": rss_open,
    }
    for name, setting in SEARCH_SETTINGS.items():
        took, took_cpu, hits = [], [], []
        for query in queries:
            t0, c0 = time.perf_counter(), time.process_time()
            found = index.search(
                queries_embeddings=query, top_k=10, show_progress=False, **setting
            )[0]
            took.append(time.perf_counter() - t0)
            took_cpu.append(time.process_time() - c0)
            hits.append([page for page, _ in found])
        overlap = [len(set(h) & set(e.tolist())) / 10 for h, e in zip(hits, exact, strict=False)]
        found = zip(planted.tolist(), hits, strict=True)
        out[name] = {
            **setting,
            "p50_ms": _ms(took, 50),
            "p95_ms": _ms(took, 95),
            "cpu_p50_ms": _ms(took_cpu, 50),
            "overlap10": round(float(np.mean(overlap)), 3),
            "planted_at10": round(float(np.mean([p in h for p, h in found])), 3),
        }
    out["rss_after_searches_mb"] = memory_mb()["VmRSS"]
    index.close()
    return out


def _ms(values: list[float], pct: int) -> float:
    return round(1000 * float(np.percentile(values, pct)), 1)


def main() -> None:
    torch.set_num_threads(1)
    phase, folder, tokens = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    if phase == "build":
        nbits = int(sys.argv[4]) if len(sys.argv) > 4 else 4
        result = build(folder, tokens, nbits)
    else:
        result = search(folder, tokens)
    result["fast_plaid"] = _version()
    print(json.dumps(result), flush=True)


def _version() -> str:
    from importlib.metadata import version

    return f"fast-plaid {version('fast-plaid')}, torch {torch.__version__}"


if __name__ == "__main__":
    main()
