"""Resident memory and latency of the rerank's vector cache: in the heap or on disk.

Each mode runs in a fresh child process, so memory freed by one cannot hide in the
allocator of the next. RssAnon is the process's own memory; RssFile counts mapped file
pages, which the kernel may drop under pressure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.search_bench import sweep_store
from latestore import MemoryConfig, Store, StoreConfig
from latestore.evaluation import load_beir


def rss_mb() -> dict[str, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def child(store_path: Path, data_dir: Path, mode: str) -> dict[str, Any]:
    data = load_beir(data_dir)
    before = rss_mb()
    start = time.perf_counter()
    store = Store.open(store_path, config=StoreConfig(memory=MemoryConfig(vector_cache=mode)))  # type: ignore[arg-type]
    open_s = time.perf_counter() - start
    opened = rss_mb()
    vectors = store.encoder.encode_queries(list(data.queries.values()))
    row = sweep_store(store, vectors, [(128, 16, 256)])[0]
    after = rss_mb()
    store.close()
    return {
        "vector_cache": mode,
        "open_s": open_s,
        # heap taken by opening: the vector cache (unless on disk) and the FAISS index
        "heap_mb_open": opened["RssAnon"] - before["RssAnon"],
        "mapped_mb_after_search": after["RssFile"] - before["RssFile"],
        **{k: row[k] for k in ("p50_ms", "p95_ms", "overlap10")},
    }


def run(store_path: Path, data_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for mode in ("memory", "disk"):
        out = subprocess.run(
            [sys.executable, "-m", "bench.cache_bench", str(store_path), str(data_dir), mode],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


if __name__ == "__main__":
    result = child(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))
