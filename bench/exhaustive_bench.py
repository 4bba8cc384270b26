"""Exhaustive CPU MaxSim over 1M float16 tokens against the bare float32 GEMM, one run.

    python -m bench.exhaustive_bench [--tokens 1000000] [--threads 1] [--repeats 5]

Pages of 100-500 tokens (128 dims, float16) are packed in an arena as the store holds
them. Timed, interleaved, median of ``--repeats``:

* ``in_place``: what an exhaustive search runs now: ``maxsim_blocks`` over
  ``VectorCache.blocks``, views of the pages where they lie, one L2-sized float32 block
  at a time (``GatherScorer.top_pages``, including its top-k merging);
* ``gather``: what it ran before: pages gathered 4,096 at a time into one float16
  copy, converted block by block, ``maxsim_many``;
* ``bare_gemm``: ``torch.mm`` of the whole corpus already in float32 ``(tokens, 128)``
  with the query ``(128, 32)``: the arithmetic and memory traffic alone, no MaxSim.

Prints the machine, its load, the thread count, and the ratios to the bare GEMM.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench.open_bench import machine
from latestore.index.maxsim import block_tokens, maxsim_many
from latestore.index.scorers import GATHER_GROUP, GatherScorer
from latestore.index.vectors import VectorCache

DIM = 128
QUERY_TOKENS = 32


def fill(cache: VectorCache, tokens: int, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    made, page = 0, 0
    while made < tokens:
        n = int(rng.integers(100, 501))
        cache.put(page, rng.standard_normal((n, DIM)).astype(np.float16))
        made += n
        page += 1
    return list(range(page))


def timed(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cache = VectorCache(DIM, "float16", on_disk=True, directory=Path(tmp))
        ids = fill(cache, args.tokens)
        rng = np.random.default_rng(1)
        query = rng.standard_normal((QUERY_TOKENS, DIM)).astype(np.float32)
        pages = np.asarray(ids, dtype=np.int64)

        def blocks(chunk: list[int]) -> object:
            return cache.blocks(chunk, block_tokens(DIM))

        in_place = GatherScorer(cache.gather, cache.page_ids, blocks)  # type: ignore[arg-type]

        def gather_then_score() -> None:
            for start in range(0, len(ids), GATHER_GROUP):
                tokens, lengths = cache.gather(ids[start : start + GATHER_GROUP])
                maxsim_many([query], tokens, lengths)

        corpus = torch.from_numpy(
            np.concatenate([np.asarray(cache.get(p), np.float32) for p in ids])
        )
        query_t = torch.from_numpy(query)
        bare = timed(lambda: torch.mm(corpus, query_t.T), 1)  # warm-up
        results = {"in_place": [], "gather": [], "bare_gemm": []}  # type: dict[str, list[float]]
        for _ in range(args.repeats):
            results["bare_gemm"].append(timed(lambda: torch.mm(corpus, query_t.T), 1))
            results["in_place"].append(
                timed(lambda: in_place.top_pages([query], 10, pages, True), 1)
            )
            results["gather"].append(timed(gather_then_score, 1))
        medians = {k: round(statistics.median(v), 1) for k, v in results.items()}
        bare = medians["bare_gemm"]
        print(
            json.dumps(
                {
                    "machine": machine(),
                    "tokens": cache.total_tokens,
                    "pages": len(ids),
                    "threads": args.threads,
                    "median_ms": medians,
                    "all_ms": {k: [round(x, 1) for x in v] for k, v in results.items()},
                    "in_place_over_bare": round(medians["in_place"] / bare, 2),
                    "gather_over_bare": round(medians["gather"] / bare, 2),
                    "loadavg_after": os.getloadavg(),
                }
            )
        )


if __name__ == "__main__":
    main()
