"""Throughput and latency of `latestore serve` against direct Store.search on SciFact.

Builds (once) a MiniLM store of the first ``--docs`` SciFact abstracts, starts the real
server (`latestore serve`, a separate process), and runs the SciFact queries as text
through 1, 4 and 16 concurrent HTTP clients (threads with keep-alive connections), then
the same queries through Store.search in this process with as many threads, in each
search mode (maxsim, lexical, hybrid; MaxSim also with vector queries). Prints one table
of HTTP and direct numbers side by side; never part of `make test`.

    .venv/bin/python -m bench.serve_bench --docs 1000 --requests 300
    .venv/bin/python -m bench.serve_bench --explain   # as the search page asks
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The same compute threads per search as the server (`--torch-threads`, default 1), so
# the direct rows differ from the HTTP rows by the HTTP layer only.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import httpx

from bench import ceilings
from latestore import Page
from latestore.store import Store
from tests.serve.live import free_port, serve_command

ROOT = Path(__file__).resolve().parent.parent


def build(store_path: Path, corpus: Path, docs: int) -> None:
    with Store.open(store_path) as store:
        if store.count() >= docs:
            return
        pages = []
        with corpus.open() as lines:
            for line, _ in zip(lines, range(docs), strict=False):
                doc = json.loads(line)
                text = f"{doc['title']}\n{doc['text']}".strip()
                pages.append(Page(text=text, external_id=doc["id"]))
        started = time.perf_counter()
        store.add_pages(iter(pages), commit_every=256)
        print(f"built {store_path} ({docs} docs) in {time.perf_counter() - started:.0f} s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def drive(clients: int, requests: int, call: Callable[[int], object]) -> dict[str, float]:
    """``requests`` calls spread over ``clients`` threads; seconds per call and overall."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        mine = []
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            start = time.perf_counter()
            call(i)
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {
        "clients": clients,
        "qps": requests / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * percentile(latencies, 0.95),
    }


def overhead_floor(requests: int) -> list[dict[str, Any]]:
    """The HTTP layer alone: a tiny synthetic store (300 pages, dim 32) where a search
    costs about a millisecond, one client, served in this process by uvicorn in a thread."""
    import numpy as np

    from latestore import PrecomputedVectors
    from latestore.serve import ServeSettings, create_app
    from tests.serve.live import live_server
    from tests.store.helpers import clustered_pages, query_from

    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "tiny.db")
        with Store.open(path, PrecomputedVectors(32)) as store:
            pages, centres = clustered_pages(rng, 300, dim=32)
            store.add_pages(pages)
            queries = [query_from(rng, centres) for _ in range(requests)]
            bodies = [{"query": q.tolist(), "k": 10} for q in queries]
            app = create_app(store, ServeSettings(store=path))
            with live_server(app) as base, httpx.Client(base_url=base) as client:
                client.post("/search", json=bodies[0]).raise_for_status()

                def http(i: int) -> None:
                    client.post("/search", json=bodies[i]).raise_for_status()

                rows.append({"via": "http", **drive(1, requests, http)})
            store.search(queries[0], k=10)
            rows.append(
                {"via": "Store.search", **drive(1, requests, lambda i: store.search(queries[i]))}
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 4, 16])
    parser.add_argument(
        "--modes", nargs="*", default=["maxsim", "lexical", "hybrid"], help="search modes"
    )
    parser.add_argument(
        "--explain", action="store_true", help="ask for explanations, as the search page does"
    )
    parser.add_argument("--floor-only", action="store_true", help="only the HTTP-layer floor")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    args = parser.parse_args()
    if args.floor_only:
        for row in overhead_floor(args.requests):
            print(f"{row['via']}: p50 {row['p50_ms']:.2f} ms, p95 {row['p95_ms']:.2f} ms")
        return
    store_path = ROOT / "build" / f"scifact-serve-{args.docs}.db"
    store_path.parent.mkdir(exist_ok=True)
    build(store_path, args.data / "corpus.jsonl", args.docs)
    queries = [json.loads(line)["text"] for line in (args.data / "queries.jsonl").open()]
    print(json.dumps(ceilings.machine() | {"omp_threads": os.environ["OMP_NUM_THREADS"]}))

    # Vector queries leave the model out: what remains is the index and the HTTP layer.
    with Store.open(store_path) as store:
        encoded = store.encoder.encode_queries(queries[: args.requests])
    vectors = [v.tolist() for v in encoded]
    # (mode, query kind): text in every mode; vectors in the MaxSim mode (no words).
    runs = [(mode, "text") for mode in args.modes]
    if "maxsim" in args.modes:
        runs.append(("maxsim", "vectors"))

    def body(mode: str, kind: str, i: int) -> dict[str, Any]:
        query: Any = queries[i % len(queries)] if kind == "text" else vectors[i % len(vectors)]
        return {"query": query, "k": args.k, "mode": mode, "explain": args.explain}

    port = free_port()
    server = subprocess.Popen(
        serve_command(
            store_path,
            port,
            "--search-workers",
            "16",
            "--torch-threads",
            os.environ["OMP_NUM_THREADS"],
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    rows: list[dict[str, Any]] = []
    # The direct store is opened beside the running server and each HTTP row is
    # followed at once by its direct row, so both see the same machine load (on a
    # shared machine the load moves between minutes).
    store = Store.open(store_path)
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        local = threading.local()

        def http_call(mode: str, kind: str) -> Callable[[int], None]:
            def call(i: int) -> None:
                client = getattr(local, "client", None)
                if client is None:
                    client = local.client = httpx.Client(base_url=base, timeout=60)
                client.post("/search", json=body(mode, kind, i)).raise_for_status()

            return call

        # The server's own code path for explanations, in this process, without HTTP.
        from latestore.serve import ServeSettings
        from latestore.serve.service import Service

        service = Service(store, ServeSettings(store=str(store_path)))

        def direct_call(mode: str, kind: str) -> Callable[[int], None]:
            def call(i: int) -> None:
                query: Any = (
                    queries[i % len(queries)] if kind == "text" else encoded[i % len(encoded)]
                )
                if args.explain:
                    service.search([query], args.k, None, False, True, {"mode": mode})
                else:
                    store.search(query, k=args.k, mode=mode)

            return call

        http_call("maxsim", "text")(0)  # the server loads its model on the first text query
        store.search(queries[0], k=args.k)  # and this process its model and torch
        for mode, kind in runs:
            for clients in args.clients:
                for via, make in (("http", http_call), ("Store.search", direct_call)):
                    measured = drive(clients, args.requests, make(mode, kind))
                    rows.append({"via": via, "mode": mode, "query": kind, **measured})
                    print(json.dumps(rows[-1]), flush=True)  # a long run's rows, as they come
    finally:
        store.close()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

    explained = ", explained" if args.explain else ""
    print(
        f"\nSciFact subset: {args.docs} docs, {args.requests} queries per row, k={args.k}"
        f"{explained}\n"
    )
    direct = {(r["mode"], r["query"], r["clients"]): r for r in rows if r["via"] == "Store.search"}
    print(
        "| mode | query | clients | HTTP searches/s | HTTP p50 ms | HTTP p95 ms "
        "| direct searches/s | direct p50 ms | direct p95 ms | HTTP overhead p50 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        if row["via"] != "http":
            continue
        alone = direct[(row["mode"], row["query"], row["clients"])]
        print(
            f"| {row['mode']} | {row['query']} | {row['clients']} | {row['qps']:.1f} "
            f"| {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {alone['qps']:.1f} "
            f"| {alone['p50_ms']:.1f} | {alone['p95_ms']:.1f} "
            f"| {row['p50_ms'] - alone['p50_ms']:+.1f} |"
        )
    floor = overhead_floor(args.requests)
    print("\nHTTP layer alone (300-page synthetic store, dim 32, 1 client):")
    for row in floor:
        print(f"  {row['via']}: p50 {row['p50_ms']:.2f} ms, p95 {row['p95_ms']:.2f} ms")
    print(f"  overhead p50 {floor[0]['p50_ms'] - floor[1]['p50_ms']:+.2f} ms per search\n")


if __name__ == "__main__":
    main()
