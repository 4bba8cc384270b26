"""One size of bench.scale, in its own process: ``build`` a store, then ``search`` it.

    python -m bench.scale_child build  FOLDER TOKENS TIER
    python -m bench.scale_child search FOLDER TOKENS TIER

Each prints one JSON line. The build streams pages through ``add_pages`` (a generator,
so the store commits in batches) and records the time at every million tokens; the
search opens the store afresh, so open time and resident memory are those a new
process pays.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from bench.scale_data import DIM, Corpus
from latestore import Page, StorageConfig, Store, StoreConfig
from latestore.encoders import PageContent
from latestore.encoders.base import fingerprint_of

MILLION = 1_000_000
EXHAUSTIVE_QUERIES = int(os.environ.get("BENCH_SCALE_EXHAUSTIVE", "20"))


@dataclass
class VectorsOnly:
    """An encoder for pages that arrive with their vectors: never asked to encode."""

    dim: int = DIM
    name: str = "bench-scale"
    device: str = "cpu"
    batch_size: int = 32
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        self.fingerprint = fingerprint_of({"family": "bench-scale", "dim": self.dim})

    def encode_queries(self, queries: Any) -> list[npt.NDArray[np.float32]]:
        raise RuntimeError("bench.scale queries are vectors")

    def encode_pages(self, pages: Sequence[PageContent]) -> list[npt.NDArray[np.float32]]:
        raise RuntimeError("bench.scale pages carry their vectors")


def memory_mb() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[name] = round(int(value.split()[0]) / 1024, 1)
    return out


class PeakMemory:
    """Peaks of anonymous and file-backed RSS, sampled every half second (VmHWM is their
    sum's peak and does not tell the heap from mapped file pages)."""

    def __init__(self) -> None:
        self.anon = self.file = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            now = memory_mb()
            self.anon = max(self.anon, now["RssAnon"])
            self.file = max(self.file, now["RssFile"])

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join()
        return [self.anon, self.file]


def db_path(folder: Path, tier: str) -> Path:
    return folder / f"{tier}.db"


def build(folder: Path, tokens: int, tier: str) -> dict[str, Any]:
    corpus = Corpus(tokens)
    marks: list[float] = []
    cpu_marks: list[float] = []  # process CPU seconds: steadier than wall time under load
    generating = cpu_generating = 0.0
    made = 0

    def pages() -> Iterator[Page]:
        nonlocal generating, cpu_generating, made
        batches = corpus.batches()
        number = 0
        while True:
            start, cpu_start = time.perf_counter(), time.process_time()
            batch = next(batches, None)
            generating += time.perf_counter() - start
            cpu_generating += time.process_time() - cpu_start
            if batch is None:
                return
            for matrix in batch:
                yield Page(vectors=matrix, text=f"page {number}", external_id=str(number))
                number += 1
                made += len(matrix)
                if made >= MILLION * (len(marks) + 1):
                    marks.append(time.perf_counter() - generating)
                    cpu_marks.append(time.process_time() - cpu_generating)

    store = Store.open(
        db_path(folder, tier),
        VectorsOnly(),
        config=StoreConfig(storage=StorageConfig(vector_dtype=cast(Any, tier))),
    )
    peaks = PeakMemory()
    start, cpu_start = time.perf_counter(), time.process_time()
    ids = store.add_pages(pages())
    seconds = time.perf_counter() - start - generating
    cpu_seconds = time.process_time() - cpu_start - cpu_generating
    store.close()
    peak_anon_file = peaks.stop()
    np.save(folder / f"{tier}.ids.npy", np.asarray(ids, dtype=np.int64))
    queries = sorted(corpus.queries)
    np.save(folder / "queries.npy", np.stack([corpus.queries[q] for q in queries]))
    np.save(folder / "planted.npy", np.asarray(queries, dtype=np.int64))
    rates = [round(MILLION / s) for s in np.diff([start, *marks])]
    cpu_rates = [round(MILLION / s) for s in np.diff([cpu_start, *cpu_marks])]
    return {
        "tokens": made,
        "pages": len(ids),
        "build_s": round(seconds, 1),
        "build_tokens_per_s": round(made / seconds),
        "tokens_per_s_by_million": rates,
        "build_cpu_s": round(cpu_seconds, 1),
        "tokens_per_cpu_s": round(made / cpu_seconds),
        "tokens_per_cpu_s_by_million": cpu_rates,
        "peak_rss_build_mb": memory_mb()["VmHWM"],
        "peak_rss_anon_file_build_mb": peak_anon_file,
        "rss_anon_file_end_of_build_mb": [memory_mb()["RssAnon"], memory_mb()["RssFile"]],
        "disk": disk_usage(folder, tier),
    }


def disk_usage(folder: Path, tier: str) -> dict[str, int]:
    db = db_path(folder, tier)
    out = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_file() and name.startswith(db.name):
            out[name] = path.stat().st_size
    return out


def search(folder: Path, tokens: int, tier: str) -> dict[str, Any]:
    queries = list(np.load(folder / "queries.npy"))
    ids = np.load(folder / f"{tier}.ids.npy")
    planted = ids[np.load(folder / "planted.npy")]
    start = time.perf_counter()
    store = Store.open(db_path(folder, tier), VectorsOnly())
    opened = time.perf_counter() - start
    opened_memory = memory_mb()
    rss_open = opened_memory["VmRSS"]
    first = store.search(queries[0], k=10)
    first_s = time.perf_counter() - start
    # A long-running process loads torch at its second search (latestore.torch_use);
    # the steady-state figures below start after it.
    store.search(queries[0], k=10)
    torch_ready_s = time.perf_counter() - start
    info = store.stats()
    # CPU seconds per search as well: on a shared machine the wall time mostly
    # measures the neighbours, while one search's CPU time is its own cost.
    alone, alone_cpu, hits = [], [], []
    for query in queries:
        t0, c0 = time.perf_counter(), time.process_time()
        hits.append([h.page_id for h in store.search(query, k=10)])
        alone.append(time.perf_counter() - t0)
        alone_cpu.append(time.process_time() - c0)
    searched_memory = memory_mb()
    rss_searched = searched_memory["VmRSS"]
    alone_qps = round(len(alone) / sum(alone), 1)
    alone_cpu_per_query = round(1000 * sum(alone_cpu) / len(alone_cpu), 1)
    busy = _with_a_busy_process(store, queries)
    concurrent = {n: _concurrent(store, queries, n) for n in (4, 16)}
    exact, exact_cpu, exact_hits = [], [], []
    for query in queries[:EXHAUSTIVE_QUERIES]:
        t0, c0 = time.perf_counter(), time.process_time()
        exact_hits.append([h.page_id for h in store.search(query, k=10, exhaustive=True)])
        exact.append(time.perf_counter() - t0)
        exact_cpu.append(time.process_time() - c0)
    overlap = [
        len(set(a) & set(e)) / max(1, len(e)) for a, e in zip(hits, exact_hits, strict=False)
    ]
    found = list(zip(planted, hits, strict=True))
    store.close()
    del first
    return {
        "open_s": round(opened, 2),
        "open_first_search_s": round(first_s, 2),
        "torch_ready_s": round(torch_ready_s, 2),
        "rss_open_mb": rss_open,
        "rss_after_searches_mb": rss_searched,
        # Anonymous memory is the process's own; file pages (the mapped vector file and
        # FAISS snapshot) are page cache the kernel may drop and read again.
        "rss_anon_file_open_mb": [opened_memory["RssAnon"], opened_memory["RssFile"]],
        "rss_anon_file_after_searches_mb": [searched_memory["RssAnon"], searched_memory["RssFile"]],
        "index": info.index,
        "p50_ms": _ms(alone, 50),
        "p95_ms": _ms(alone, 95),
        "cpu_p50_ms": _ms(alone_cpu, 50),
        "alone_qps": alone_qps,
        "busy_p50_ms": _ms(busy, 50),
        "busy_p95_ms": _ms(busy, 95),
        "busy_over_alone_p50": round(float(np.median(busy) / np.median(alone)), 2),
        "alone_cpu_ms_per_query": alone_cpu_per_query,
        **{f"c{n}_{key}": value for n, got in concurrent.items() for key, value in got.items()},
        "exhaustive_p50_ms": _ms(exact, 50),
        "exhaustive_cpu_p50_ms": _ms(exact_cpu, 50),
        "overlap10": round(statistics.fmean(overlap), 3) if overlap else None,
        "planted_at10": round(float(np.mean([p in h for p, h in found])), 3),
    }


def _with_a_busy_process(store: Store, queries: list[Any]) -> list[float]:
    """The same searches one at a time while another process spins on a core."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        took = []
        for query in queries:
            t0 = time.perf_counter()
            store.search(query, k=10)
            took.append(time.perf_counter() - t0)
        return took
    finally:
        spinner.kill()
        spinner.wait()


def _concurrent(store: Store, queries: list[Any], workers: int) -> dict[str, float | None]:
    def one(query: Any) -> float:
        t0 = time.perf_counter()
        store.search(query, k=10)
        return time.perf_counter() - t0

    start, cpu_start = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(workers) as pool:
        took = list(pool.map(one, queries))
    wall = time.perf_counter() - start
    # CPU per query (all threads): thrash shows here whatever the machine's load.
    cpu_ms = round(1000 * (time.process_time() - cpu_start) / len(took), 1)
    return {
        "p50_ms": _ms(took, 50),
        "p95_ms": _ms(took, 95),
        "qps": round(len(took) / wall, 1),
        "cpu_ms_per_query": cpu_ms,
    }


def _ms(values: list[float], pct: int) -> float | None:
    if not values:
        return None
    return round(1000 * float(np.percentile(values, pct)), 1)


def main() -> None:
    phase, folder, tokens, tier = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    run = build if phase == "build" else search
    profile_to = os.environ.get("BENCH_SCALE_PROFILE")  # a folder: where each phase went
    if not profile_to:
        print(json.dumps(run(folder, tokens, tier)), flush=True)
        return
    profiler = cProfile.Profile(time.process_time)  # CPU: the wall mostly measures load
    result = profiler.runcall(run, folder, tokens, tier)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
    Path(profile_to).mkdir(parents=True, exist_ok=True)
    (Path(profile_to) / f"{phase}-{tokens}-{tier}.txt").write_text(out.getvalue())
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
