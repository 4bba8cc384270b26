"""IVF training cost and quality: FAISS's flat coarse k-means against the two-level one.

A store trains its IVF once, on ``nlist x train_sample_per_list`` tokens (4,096 x 64 by
default). This bench trains both ways on the same clustered, unit-length tokens of a
MiniLM-sized dimension and reports CPU seconds, and the recall@10 of the token search
(IVF with a flat codec, the store's nprobe rule) against a flat index.

    python -m bench.ivf_training [--dim 384] [--tokens 400000] [--nlist 4096]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from latestore.index.token_index import IndexParams, TokenIndex


def clustered(rng: np.random.Generator, n: int, dim: int, topics: int) -> npt.NDArray[np.float32]:
    """``n`` unit tokens around ``topics`` centres of uneven size (a few large, many
    small), as a real corpus's words are."""
    centres = rng.standard_normal((topics, dim)).astype(np.float32)
    weights = rng.pareto(1.2, topics) + 0.05
    picks = rng.choice(topics, size=n, p=weights / weights.sum())
    points = centres[picks] + 0.7 * rng.standard_normal((n, dim)).astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points


def flat_faiss_training(index: TokenIndex, sample: npt.NDArray[np.float32]) -> None:
    """What train_ivf did before the two-level training: FAISS's own coarse k-means."""
    nlist = min(4096, len(sample))
    factory = f"IVF{nlist},Flat"
    trained: Any = faiss.index_factory(index.dim, factory, faiss.METRIC_INNER_PRODUCT)
    ivf: Any = faiss.downcast_index(faiss.extract_index_ivf(trained))
    ivf.cp.seed = index.params.seed
    ivf.cp.niter = 12
    trained.train(sample)
    index.index = trained


def recall_at_10(
    index: TokenIndex, tokens: npt.NDArray[np.float32], queries: npt.NDArray[np.float32]
) -> float:
    exact = faiss.IndexFlatIP(tokens.shape[1])
    exact.add(tokens)
    _, truth = exact.search(queries, 10)
    _, found = index.search(queries, 10, nprobe=16)
    positions = found & ((1 << 20) - 1)
    return float(
        np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, positions, strict=True)])
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--tokens", type=int, default=400_000)
    parser.add_argument("--nlist", type=int, default=4096)
    parser.add_argument("--per-list", type=int, default=64)
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"load {os.getloadavg()[0]:.1f}; faiss {faiss.__version__}, "
        f"{faiss.omp_get_max_threads()} threads"
    )
    rng = np.random.default_rng(0)
    tokens = clustered(rng, args.tokens + 1000, args.dim, topics=3000)
    tokens, queries = tokens[:-1000], tokens[-1000:]
    sample = tokens[rng.permutation(len(tokens))[: args.nlist * args.per_list]]
    params = IndexParams(ivf_min_tokens=args.nlist * 24, ivf_nlist=args.nlist, ivf_codec="Flat")
    for name in ("flat k-means (before)", "two-level (after)"):
        index = TokenIndex(args.dim, params)
        start = time.process_time()
        if name.startswith("flat"):
            flat_faiss_training(index, sample)
        else:
            index.train_ivf(sample, len(tokens))
        cpu = time.process_time() - start
        index.add([1], [tokens])
        print(
            f"{name:24s} train {cpu:7.1f} CPU-s on {len(sample):,} tokens, "
            f"token recall@10 {recall_at_10(index, tokens, queries):.3f} "
            f"(nprobe 16 of {args.nlist})"
        )
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
