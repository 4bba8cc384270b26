"""Ranking quality per collection, mode, fusion rule, backend and window scoring.

Over each collection's cached vectors (:mod:`bench.ranking_data`; encode first), with
exhaustive exact MaxSim and the lexical rankings of real SQLite and PostgreSQL stores
(:mod:`bench.ranking_lexical`), prints nDCG@10 and recall@100 of

* every window-scoring variant (:mod:`bench.ranking_scores`), MaxSim alone;
* maxsim, lexical, hybrid before (RRF) and hybrid after (the library's default fusion)
  and the other fusion rules, with windows on, on each backend.

Hybrid is computed as ``Store.search(mode="hybrid", exhaustive=True)`` computes it:
the union of the top ``depth`` MaxSim pages and the top ``depth`` lexical hits, each
scored with exact MaxSim, fused by :func:`latestore.index.fusion.fuse`
(``tests/bench/test_ranking_quality.py`` checks that the two agree on a real store).

    python -m bench.ranking_quality /work/wt/rank-cache cranfield cisi pdfs scifact \\
        --out /tmp/ranking.json
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.ranking_data import Cached, read
from bench.ranking_lexical import Ranking, lexical_runs
from bench.ranking_scores import PageScores, page_scores
from latestore.evaluation import ndcg_at, recall_at
from latestore.index.fusion import default_weight, fuse

DEPTH = 100
# StoreConfig.window_scoring -> the page-score variant of bench.ranking_scores it equals.
SCORINGS = {"best": "maxp_kept", "union": "windowed"}
PG_URL = os.environ.get("LATESTORE_TEST_PG_URL")


@dataclass
class Run:
    """One collection's inputs for fusion: exact MaxSim of every page, lexical rankings."""

    ids: list[str]
    qrels: dict[str, dict[str, float]]
    query_ids: list[str]
    maxsim: np.ndarray  # (queries, pages)
    lexical: dict[str, Ranking]


def metrics(rankings: dict[str, list[str]], qrels: dict[str, dict[str, float]]) -> dict[str, float]:
    qids = list(rankings)
    return {
        "ndcg10": float(np.mean([ndcg_at(rankings[q], qrels[q], 10) for q in qids])),
        "recall100": float(np.mean([recall_at(rankings[q], qrels[q], 100) for q in qids])),
    }


def maxsim_rankings(run: Run, k: int = 100) -> dict[str, list[str]]:
    out = {}
    for row, qid in enumerate(run.query_ids):
        scores = run.maxsim[row]
        # Ties by smaller page position, as the store breaks them by page id.
        order = np.lexsort((np.arange(len(scores)), -scores))[:k]
        out[qid] = [run.ids[i] for i in order]
    return out


def hybrid_rankings(run: Run, k: int = 100, **options: Any) -> dict[str, list[str]]:
    position = {page: i for i, page in enumerate(run.ids)}
    out = {}
    for row, qid in enumerate(run.query_ids):
        scores = run.maxsim[row]
        top = np.lexsort((np.arange(len(scores)), -scores))[: max(k, DEPTH)]
        lexical = run.lexical[qid][: max(k, DEPTH)]
        candidates = set(top.tolist()) | {position[p] for p, _ in lexical}
        fused = fuse(
            {i: float(scores[i]) for i in candidates},
            set(top.tolist()),
            [(position[p], s) for p, s in lexical],
            k,
            **options,
        )
        out[qid] = [run.ids[h.page_id] for h in fused]
    return out


def collection_runs(
    cached: Cached, scores: PageScores, backend: str, cache: Path, variant: str = "windowed"
) -> Run:
    collection = cached.collection
    texts = [collection.queries[q] for q in scores.queries]
    lexical = lexical_runs(collection, scores.queries, texts, backend, cache, PG_URL, DEPTH)
    return Run(collection.ids, collection.qrels, scores.queries, scores.scores[variant], lexical)


def window_table(cached: Cached, scores: PageScores) -> dict[str, dict[str, float]]:
    out = {}
    for variant in ("truncated", "windowed", "maxp", "maxp_kept"):
        run = Run(
            cached.collection.ids,
            cached.collection.qrels,
            scores.queries,
            scores.scores[variant],
            {},
        )
        out[variant] = metrics(maxsim_rankings(run), run.qrels)
    return out


FUSIONS: dict[str, dict[str, Any]] = {
    "hybrid before (rrf)": {"rule": "rrf", "weight": 0.5},
    "hybrid after (convex)": {"rule": "convex", "weight": default_weight("convex")},
}


def mode_table(run: Run) -> dict[str, dict[str, float]]:
    lexical = {q: [p for p, _ in run.lexical[q]] for q in run.query_ids}
    out = {
        "maxsim": metrics(maxsim_rankings(run), run.qrels),
        "lexical": metrics(lexical, run.qrels),
    }
    for name, options in FUSIONS.items():
        out[name] = metrics(hybrid_rankings(run, **options), run.qrels)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("names", nargs="+")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--window-scoring",
        choices=sorted(SCORINGS),
        default="best",
        help="how MaxSim scores a windowed page (StoreConfig.window_scoring; default best)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {
        "load_average": os.getloadavg()[0],
        "window_scoring": args.window_scoring,
    }
    for name in args.names:
        cached = read(name, args.cache)
        # Training queries (scifact-subset's ``train:``) are for tuning, never reported.
        keep = [i for i, q in enumerate(cached.queries) if not q.startswith("train:")]
        cached.queries = [cached.queries[i] for i in keep]
        cached.query_vectors = [cached.query_vectors[i] for i in keep]
        scores = page_scores(cached, cached.queries, cached.query_vectors)
        entry: dict[str, Any] = {"windows": window_table(cached, scores)}
        for backend in args.backends.split(","):
            run = collection_runs(
                cached, scores, backend, args.cache, SCORINGS[args.window_scoring]
            )
            entry[backend] = mode_table(run)
        report[name] = entry
        print(json.dumps({name: entry}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
