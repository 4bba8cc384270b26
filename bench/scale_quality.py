"""Overlap@10 with exhaustive MaxSim as candidate settings vary, at one corpus size.

The derived index alone (no SQL), fed bench.scale_data's clustered pages, so a sweep
of nprobe x k_per_token x n_rerank at several million tokens takes minutes: this is
how the defaults' widening with size (SearchParams.scaled) was chosen.

    python -m bench.scale_quality 4M [--queries 20] [--grid nprobe=16,32 k=128,256 r=256]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import replace

import numpy as np

from bench.scale import parse_size
from bench.scale_data import CENTRES, DIM, Corpus
from latestore.index.late_index import LateInteractionIndex
from latestore.index.ranking import SearchParams
from latestore.index.token_index import IndexParams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("size")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--nprobe", default="16,32")
    parser.add_argument("--k", default="128,256,512")
    parser.add_argument("--rerank", default="256,512")
    parser.add_argument("--nlist", type=int, default=None)
    parser.add_argument("--codec", default="PQ")
    parser.add_argument("--centres", type=int, default=CENTRES)
    args = parser.parse_args()
    tokens = parse_size(args.size)
    corpus = Corpus(tokens, n_queries=args.queries, n_centres=args.centres)
    index = LateInteractionIndex(
        DIM, "float16", IndexParams(ivf_nlist=args.nlist, ivf_codec=args.codec), device="cpu"
    )
    start = time.perf_counter()
    page = 0
    for batch in corpus.batches():
        index.upsert(list(range(page, page + len(batch))), list(batch))
        page += len(batch)
    built = time.perf_counter() - start
    print(json.dumps({"tokens": tokens, "build_s": round(built, 1), **index.tokens.describe()}))
    queries = [corpus.queries[p] for p in sorted(corpus.queries)]
    base = SearchParams(widen_above_tokens=0)  # the grid's values as given
    start = time.perf_counter()
    exact = [index.search([q], 10, base, exhaustive=True)[0] for q in queries]
    took = (time.perf_counter() - start) / len(queries)
    print(json.dumps({"exhaustive_ms": round(1000 * took)}), flush=True)
    truth = [{p for p, _ in r} for r in exact]
    planted = sorted(corpus.queries)
    grid = itertools.product(*(map(int, v.split(",")) for v in (args.nprobe, args.k, args.rerank)))
    wide = SearchParams().widened(index.vectors.total_tokens)  # the defaults at this size
    settings = [wide] + [
        replace(base, nprobe=nprobe, k_per_token=k, n_rerank=rerank) for nprobe, k, rerank in grid
    ]
    for params in settings:
        nprobe, k, rerank = params.nprobe, params.k_per_token, params.n_rerank
        start = time.perf_counter()
        got = [index.search([q], 10, params)[0] for q in queries]
        ms = 1000 * (time.perf_counter() - start) / len(queries)
        pairs = zip(got, truth, strict=True)
        overlap = np.mean([len({p for p, _ in g} & t) / 10 for g, t in pairs])
        hit = np.mean([p in {x for x, _ in g} for p, g in zip(planted, got, strict=True)])
        row = {"nprobe": nprobe, "k": k, "rerank": rerank, "overlap10": round(float(overlap), 3)}
        print(json.dumps({**row, "planted10": float(hit), "ms": round(ms)}), flush=True)


if __name__ == "__main__":
    main()
