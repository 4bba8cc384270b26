"""Open + first search of a large store: vectors from SQL into the heap (before) against
the persisted, memory-mapped vector file (after), each in a fresh process.

    python -m bench.open_bench build /tmp/scale/16m.db --tokens 16000000
    python -m bench.open_bench run /tmp/scale/16m.db [--profile]

``build`` writes synthetic clustered 128-dim float16 tokens (4,096 centres, pages of
100-500 tokens) with SQL-only adds, then one ``reindex`` (IVF trained once, the vector
file and snapshot written). ``run`` opens the store in child processes:

* ``memory``: ``vector_cache="memory"``, every vector read from SQL into the heap, as
  every open did before the vector file;
* ``disk``: the vector file mapped in place, only the changes since it replayed.

and prints, per mode, the seconds to import latestore, torch and FAISS (a cost of every
process whatever the store; the issue's "first search" included part of it), to open,
and to answer the first search (a vector query near a planted page, default settings),
RSS (anonymous and
file-backed) after open and after the search, how the vectors were loaded, the machine
and its load. ``--profile`` adds the top functions of a cProfile of the open.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.cpu import cpu_model

DIM = 128
CENTRES = 4096


def rss_mb() -> dict[str, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile", "VmHWM"):
            fields[name] = round(int(value.split()[0]) / 1024, 1)
    return fields


def machine() -> dict[str, Any]:
    return {"cpu": cpu_model("?"), "cores": os.cpu_count(), "loadavg": os.getloadavg()}


def centres() -> np.ndarray:
    rng = np.random.default_rng(7)
    c = rng.standard_normal((CENTRES, DIM)).astype(np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def synthetic_pages(tokens: int, seed: int = 0) -> Iterator[Any]:
    from latestore import Page

    rng = np.random.default_rng(seed)
    c = centres()
    made = 0
    i = 0
    while made < tokens:
        n = int(rng.integers(100, 501))
        topics = rng.choice(CENTRES, size=4, replace=False)[rng.integers(0, 4, size=n)]
        v = c[topics] + 0.05 * rng.standard_normal((n, DIM)).astype(np.float32)
        yield Page(vectors=v.astype(np.float16), external_id=f"p{i}")
        made += n
        i += 1


def query_for(page_index: int) -> np.ndarray:
    """A query of 32 tokens near page ``page_index``'s tokens (the page is planted)."""
    pages = synthetic_pages(10**12)
    for _ in range(page_index):
        next(pages)
    vectors = np.asarray(next(pages).vectors, dtype=np.float32)
    rng = np.random.default_rng(page_index)
    rows = vectors[rng.integers(0, len(vectors), size=32)]
    return (rows + 0.02 * rng.standard_normal(rows.shape)).astype(np.float32)


def build(path: Path, tokens: int, nlist: int | None) -> None:
    from latestore import IndexConfig, PrecomputedVectors, Store, StoreConfig

    started = time.perf_counter()
    config = StoreConfig(index=IndexConfig(ivf_nlist=nlist)) if nlist else StoreConfig()
    with Store.open(path, PrecomputedVectors(dim=DIM), config=config, load_index=False) as store:
        store.add_pages(synthetic_pages(tokens), commit_every=500)
        written = time.perf_counter()
        print(json.dumps({"sql_s": round(written - started, 1)}), flush=True)
        store.stats()  # loads the index: one IVF training, vector file and snapshot at close
    print(json.dumps({"reindex_s": round(time.perf_counter() - written, 1)}), flush=True)


def child(path: Path, mode: str, profile: bool) -> dict[str, Any]:
    started = time.perf_counter()
    import faiss  # noqa: F401 - imported before the clock starts: a per-process cost
    import torch  # noqa: F401

    from latestore import MemoryConfig, PrecomputedVectors, Store, StoreConfig
    from latestore.index import maxsim  # noqa: F401

    imported = time.perf_counter()
    query = query_for(3)
    before = rss_mb()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    c0, t0 = time.process_time(), time.perf_counter()
    store = Store.open(
        path,
        PrecomputedVectors(dim=DIM),
        config=StoreConfig(memory=MemoryConfig(vector_cache=mode)),  # type: ignore[arg-type]
    )
    c1, t1 = time.process_time(), time.perf_counter()
    opened = rss_mb()
    hits = store.search(query, k=10)
    c2, t2 = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.disable()
    searched = rss_mb()
    out = {
        "mode": mode,
        "import_s": round(imported - started, 2),
        "open_s": round(t1 - t0, 2),
        "first_search_s": round(t2 - t1, 3),
        "open_plus_first_search_s": round(t2 - t0, 2),
        # CPU seconds of this process (all its threads): what the wall time would be on
        # an idle machine, less waiting for the disk; the wall time includes the load.
        "open_cpu_s": round(c1 - c0, 2),
        "first_search_cpu_s": round(c2 - c1, 2),
        "vectors_from": store._sync.vectors_from,
        "index_from": store.opened_from,
        "rss_before_open_mb": before,
        "rss_after_open_mb": opened,
        "rss_after_search_mb": searched,
        "planted_page_rank": next((i for i, h in enumerate(hits) if h.external_id == "p3"), None),
        "tokens": store.stats().tokens,
    }
    store.close()
    if profiler is not None:
        import io
        import pstats

        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(18)
        out["profile"] = text.getvalue()
    return out


def run(path: Path, profile: bool, modes: list[str]) -> None:
    print(json.dumps({"machine": machine()}), flush=True)
    for mode in modes:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.open_bench", "child", str(path), mode]
            + (["--profile"] if profile else []),
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        report = result.pop("profile", None)
        result["loadavg"] = os.getloadavg()
        print(json.dumps(result), flush=True)
        if report:
            print(report, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["build", "run", "child"])
    parser.add_argument("path", type=Path)
    parser.add_argument("mode", nargs="?", default="disk")
    parser.add_argument("--tokens", type=int, default=16_000_000)
    parser.add_argument("--nlist", type=int, default=None)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--modes", default="disk,disk,memory", help="children to run, in order")
    args = parser.parse_args()
    if args.what == "build":
        build(args.path, args.tokens, args.nlist)
    elif args.what == "run":
        run(args.path, args.profile, args.modes.split(","))
    else:
        print(json.dumps(child(args.path, args.mode, args.profile)))


if __name__ == "__main__":
    main()
