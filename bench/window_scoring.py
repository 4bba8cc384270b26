"""Best-window vs union scoring through the store: quality and search latency, one run.

Builds a SQLite store from a collection's cached windowed vectors
(:mod:`bench.ranking_data`: exactly what ``windows=True`` writes) and records each
page's rows per window in ``ls_pages.window_rows``, as the encoder does when it writes
a page itself (vectors given by a caller carry none). The same loaded index then
answers every query twice, once per ``window_scoring`` (switched on the index between
calls, so both see the same pages, caches and load), in alternating order:

* quality: ``Store.search(exhaustive=True)``, nDCG@10 and recall@100 over the
  collection's test queries;
* latency: ``Store.search`` at default settings (FAISS candidates, exact rerank) and
  exhaustive, ``k`` = 10, p50 and p95.

    python -m bench.window_scoring /work/wt/rank-cache cranfield --db /tmp/cran.db
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.ranking_data import Cached, read

SCORINGS = ("union", "best")


def build(cached: Cached, path: Path) -> None:
    from sqlalchemy import create_engine, update

    from latestore import Page, PrecomputedVectors, Store
    from latestore.store.schema import PageRow
    from latestore.store.sql import to_url

    collection = cached.collection
    per_page: list[list[np.ndarray]] = [[] for _ in collection.ids]
    for window, kept, page in zip(
        cached.windows, cached.own, cached.window_pages.tolist(), strict=True
    ):
        per_page[page].append(window[kept])
    with Store.open(path, PrecomputedVectors(dim=384, name="minilm-windowed")) as store:
        if store.count() == len(collection.ids):
            return
        pages = [
            Page(text=t, vectors=np.concatenate(v), external_id=i)
            for i, t, v in zip(collection.ids, collection.texts, per_page, strict=True)
        ]
        for begin in range(0, len(pages), 250):
            store.upsert_pages(pages[begin : begin + 250])
    engine = create_engine(to_url(str(path)))
    with engine.begin() as conn:
        for external_id, windows in zip(collection.ids, per_page, strict=True):
            if len(windows) > 1:
                conn.execute(
                    update(PageRow)
                    .where(PageRow.external_id == external_id)
                    .values(window_rows=[len(w) for w in windows])
                )
    engine.dispose()


def main() -> None:
    from latestore import SearchConfig, Store, StoreConfig
    from latestore.evaluation import ndcg_at, recall_at

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("name")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=100, help="for latency")
    parser.add_argument("--no-quality", action="store_true")
    args = parser.parse_args()
    cached = read(args.name, args.cache)
    collection = cached.collection
    build(cached, args.db)
    picked = [i for i, q in enumerate(cached.queries) if not q.startswith("train:")]
    out: dict[str, Any] = {"collection": args.name, "cpus": os.cpu_count()}
    with Store.open(
        args.db, config=StoreConfig(search=SearchConfig(window_scoring="best"))
    ) as store:
        index = store._sync.index  # loads it: both scorings share it
        stats = store.stats()
        out.update(pages=stats.pages, tokens=stats.tokens, split_pages=len(index.windows))

        def run(scoring: str, i: int, k: int, exhaustive: bool) -> list[Any]:
            index.window_scoring = scoring
            return store.search(cached.query_vectors[i], k=k, exhaustive=exhaustive)

        if not args.no_quality:
            load = [os.getloadavg()[0]]
            ranked: dict[str, dict[str, list[str]]] = {s: {} for s in SCORINGS}
            for turn, i in enumerate(picked):
                for scoring in SCORINGS[turn % 2 :] + SCORINGS[: turn % 2]:
                    hits = run(scoring, i, 100, True)
                    ranked[scoring][cached.queries[i]] = [str(h.external_id) for h in hits]
            load.append(os.getloadavg()[0])
            qrels = collection.qrels
            out["quality_exhaustive"] = {
                s: {
                    "ndcg10": round(float(np.mean([ndcg_at(r[q], qrels[q], 10) for q in r])), 4),
                    "recall100": round(
                        float(np.mean([recall_at(r[q], qrels[q], 100) for q in r])), 4
                    ),
                }
                for s, r in ranked.items()
            }
            out["quality_queries"] = len(picked)
            out["quality_load_before_after"] = load
        timed = picked[: args.queries]
        for scoring in SCORINGS:  # warm-up
            run(scoring, timed[0], 10, False)
            run(scoring, timed[0], 10, True)
        seconds: dict[str, list[float]] = {}
        load = [os.getloadavg()[0]]
        for turn, i in enumerate(timed):
            for scoring in SCORINGS[turn % 2 :] + SCORINGS[: turn % 2]:
                for exhaustive in (False, True):
                    start = time.perf_counter()
                    run(scoring, i, 10, exhaustive)
                    name = f"{scoring} {'exhaustive' if exhaustive else 'default'}"
                    seconds.setdefault(name, []).append(time.perf_counter() - start)
        load.append(os.getloadavg()[0])
        out["latency_queries"] = len(timed)
        out["latency_load_before_after"] = load
        out["latency_ms"] = {
            name: {
                "p50": round(float(np.percentile(s, 50)) * 1000, 1),
                "p95": round(float(np.percentile(s, 95)) * 1000, 1),
            }
            for name, s in seconds.items()
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
