"""The host-side cost of one ``Store.search(query_vectors, k=10)``: everything but ranking.

On a GPU the fused kernel ranks 2M tokens in ~0.2 ms, so the Python around it decides
whether a search takes 1 ms or 3. This bench measures the store's part on any machine:
the index's ``search`` answers from memory what the real index answered on the query's
first (checked) call, so a timed call is validation, settings, the change probe, the
lock and the SQL hydrate of the hits, and nothing else. The index's own host work
around the kernel (plan dispatch, query packing, top-k decode) needs the GPU:
bench/gpu_store.py's ``host_split`` measures it there.

    python -m bench.host_overhead [--pages 500] [--calls 1000]

Prints the p50 of the whole call and of each span (cumulative time per call from
cProfile's view of the same calls, divided by the number of calls).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import platform
import pstats
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.search_bench import clustered, queries_for
from latestore import IndexConfig, PrecomputedVectors, Store, StoreConfig
from latestore.index.late_index import LateInteractionIndex

# (label, function names as cProfile names them, file suffix)
SPANS = [
    ("validate + settings + mode", ("search_request",), "request.py"),
    ("query vectors checked", ("query_vectors",), "page_encoding.py"),
    ("SQL session (no filter)", ("__exit__",), "session.py"),
    ("change probe", ("behind",), "sync.py"),
    ("read lock", ("read",), "rwlock.py"),
    ("rank (stubbed: a dict lookup)", ("rank",), "search_modes.py"),
    ("hydrate hits (SQL + records)", ("as_hits",), "search_modes.py"),
    ("  of which SQL rows", ("_rows_by_id", "_raw_hit_rows"), "hits.py"),
]


def _memoized(original: Callable[..., Any]) -> Callable[..., Any]:
    """The index's ranking, answered from memory once each query was ranked for real."""
    answers: dict[tuple[bytes, int], Any] = {}

    def search(index: Any, queries: list[np.ndarray], k: int, *args: Any, **kw: Any) -> Any:
        key = (b"".join(q.tobytes() for q in queries), k)
        if key not in answers:
            answers[key] = original(index, queries, k, *args, **kw)
        return answers[key]

    return search


def measure(
    n_pages: int = 500, tokens: int = 100, dim: int = 128, calls: int = 1000
) -> dict[str, Any]:
    rng = np.random.default_rng(3)
    pages, centres = clustered(rng, n_pages, dim, tokens, topics=max(20, n_pages // 20))
    queries = [q.astype(np.float32) for q in queries_for(rng, centres, 16)]
    out: dict[str, Any] = {"pages": n_pages, "tokens": n_pages * tokens, "calls": calls}
    with tempfile.TemporaryDirectory() as tmp:
        config = StoreConfig(index=IndexConfig(ivf_codec="none"))
        store = Store.open(
            Path(tmp) / "host.db", PrecomputedVectors(dim=dim, name="b"), config=config
        )
        with store:
            store.add_pages(pages)
            want = [store.search(q, k=10) for q in queries]
            original = LateInteractionIndex.search
            LateInteractionIndex.search = _memoized(original)  # type: ignore[method-assign]
            try:
                for q, hits in zip(queries, want, strict=True):
                    assert store.search(q, k=10) == hits  # ranks once, for real
                    assert store.search(q, k=10) == hits  # from memory: the same hits
                latencies = []
                for i in range(calls):
                    start = time.perf_counter()
                    store.search(queries[i % len(queries)], k=10)
                    latencies.append(time.perf_counter() - start)
                out["p50_us"] = float(np.percentile(latencies, 50) * 1e6)
                out["p95_us"] = float(np.percentile(latencies, 95) * 1e6)
                out["spans_us"] = _spans(lambda: store.search(queries[0], k=10), calls // 2)
            finally:
                LateInteractionIndex.search = original  # type: ignore[method-assign]
    return out


def _spans(call: Callable[[], Any], calls: int) -> dict[str, float]:
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(calls):
        call()
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    spans: dict[str, float] = {}
    for label, names, suffix in SPANS:
        total = sum(
            row[3]
            for (path, _, func), row in stats.items()
            if func in names and path.endswith(suffix)
        )
        spans[label] = total / calls * 1e6
    whole = sum(
        row[3]
        for (path, _, func), row in stats.items()
        if func == "search" and path.endswith("store.py")
    )
    spans["whole call (under cProfile)"] = whole / calls * 1e6
    return spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    result = measure(args.pages, calls=args.calls)
    result["machine"] = f"{platform.machine()} {platform.processor() or ''}".strip()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
