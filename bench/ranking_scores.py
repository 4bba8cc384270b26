"""Exact MaxSim page scores for every window-scoring variant, from the cached windows.

One pass over a collection's cached window vectors (:mod:`bench.ranking_data`) gives,
for every query and page, the exhaustive MaxSim score under each way of building or
scoring a page from its windows:

``truncated``
    the first window, every position (what ``windows=False`` stores);
``windowed``
    MaxSim over the union of every window's kept tokens (what ``windows=True``
    stores today: overlap split at the midpoint, each window's ``[CLS]``/``[SEP]``);
``maxp``
    the best window's own MaxSim, each window whole (Dai & Callan's MaxP);
``maxp_kept``
    the best window's MaxSim over that window's kept tokens.

Also returned: the number of windows per page, for length-normalised variants.
All scores are float32 sums of float32 dot products, like the store's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.ranking_data import Cached

NEG = np.float32(-np.inf)


@dataclass
class PageScores:
    queries: list[str]
    scores: dict[str, np.ndarray]  # variant -> (n_queries, n_pages)
    windows_per_page: np.ndarray


def page_scores(
    cached: Cached, query_ids: list[str], query_vectors: list[np.ndarray]
) -> PageScores:
    vectors = np.concatenate(cached.windows)
    lengths = np.array([len(w) for w in cached.windows])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    kept = np.concatenate(cached.own)
    queries = np.concatenate(query_vectors)
    q_starts = np.concatenate([[0], np.cumsum([len(q) for q in query_vectors])[:-1]])
    n_windows = len(lengths)
    all_max = np.empty((len(queries), n_windows), np.float32)  # per query token, window
    kept_max = np.empty((len(queries), n_windows), np.float32)
    budget = max(4096, int(1.5e8 // max(1, len(queries))))  # positions per chunk
    w = 0
    while w < n_windows:
        end = w
        while end < n_windows and (end == w or starts[end] + lengths[end] - starts[w] <= budget):
            end += 1
        a, b = starts[w], starts[end - 1] + lengths[end - 1]
        sims = queries @ vectors[a:b].T
        local = starts[w:end] - a
        all_max[:, w:end] = np.maximum.reduceat(sims, local, axis=1)
        sims[:, ~kept[a:b]] = NEG
        kept_max[:, w:end] = np.maximum.reduceat(sims, local, axis=1)
        w = end
    pages = cached.window_pages
    first = np.concatenate([[0], np.flatnonzero(np.diff(pages)) + 1])  # first window per page
    out: dict[str, np.ndarray] = {}
    out["truncated"] = np.add.reduceat(all_max[:, first], q_starts, axis=0)
    out["windowed"] = np.add.reduceat(
        np.maximum.reduceat(kept_max, first, axis=1), q_starts, axis=0
    )
    per_window_all = np.add.reduceat(all_max, q_starts, axis=0)
    per_window_kept = np.add.reduceat(kept_max, q_starts, axis=0)
    out["maxp"] = np.maximum.reduceat(per_window_all, first, axis=1)
    out["maxp_kept"] = np.maximum.reduceat(per_window_kept, first, axis=1)
    out["window_all"] = per_window_all  # (queries, windows), for further variants
    counts = np.diff(np.concatenate([first, [n_windows]]))
    return PageScores(query_ids, out, counts)


def pool_to(vectors: np.ndarray, budget: int) -> np.ndarray:
    """``vectors`` Ward-pooled to ``budget`` rows when there are more (else unchanged)."""
    if len(vectors) <= budget:
        return vectors
    from scipy.cluster.hierarchy import fcluster, linkage

    data = vectors.astype(np.float64)
    labels = fcluster(linkage(data, method="ward"), t=budget, criterion="maxclust")
    means = np.stack([data[labels == label].mean(axis=0) for label in np.unique(labels)])
    return (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)


def pooled_scores(cached: Cached, query_vectors: list[np.ndarray], budget: int) -> np.ndarray:
    """MaxSim of each query over each windowed page pooled down to ``budget`` vectors."""
    per_page: list[list[np.ndarray]] = [[] for _ in cached.collection.ids]
    for window, kept, page in zip(
        cached.windows, cached.own, cached.window_pages.tolist(), strict=True
    ):
        per_page[page].append(window[kept])
    pages = [pool_to(np.concatenate(p), budget) for p in per_page]
    return maxsim_matrix(pages, query_vectors)


def maxsim_matrix(pages: list[np.ndarray], query_vectors: list[np.ndarray]) -> np.ndarray:
    """Exhaustive MaxSim, (queries, pages)."""
    vectors = np.concatenate(pages)
    starts = np.concatenate([[0], np.cumsum([len(p) for p in pages])[:-1]])
    queries = np.concatenate(query_vectors)
    q_starts = np.concatenate([[0], np.cumsum([len(q) for q in query_vectors])[:-1]])
    best = np.empty((len(queries), len(pages)), np.float32)
    budget = max(4096, int(1.5e8 // max(1, len(queries))))
    p = 0
    while p < len(pages):
        end = p
        while end < len(pages) and (
            end == p or starts[end] + len(pages[end]) - starts[p] <= budget
        ):
            end += 1
        a, b = starts[p], starts[end - 1] + len(pages[end - 1])
        best[:, p:end] = np.maximum.reduceat(queries @ vectors[a:b].T, starts[p:end] - a, axis=1)
        p = end
    return np.add.reduceat(best, q_starts, axis=0)
