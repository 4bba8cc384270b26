"""Coarse centroids for the IVF candidate index, trained in two levels when there are many.

Flat k-means costs ``iterations x sample x nlist x dim``, and the sample grows with
``nlist``, so the cost grows with ``nlist**2``: 4,096 lists of 384-dim MiniLM tokens took
about 95 CPU-seconds, most of a 1,400-page store's build. Two levels (``sqrt(nlist)``
groups, then each group's points split into its share of the lists) touch every point
against ``2 sqrt(nlist)`` centroids instead of ``nlist``: about 30x less work at 4,096
lists. FAISS ships the idea as ``faiss.contrib.clustering.two_level_clustering``, but
that helper fails on a group too small for its share of lists (a k-means with more
centroids than points, or with none), which a clustered corpus produces; this version
gives every group at most as many lists as it has points and always returns exactly
``nlist`` centroids, deterministically for a seed. Centroids are spherical (unit
length, points assigned by inner product), as the index's tokens and metric are.
"""

from __future__ import annotations

import math

import faiss
import numpy as np
import numpy.typing as npt

# From this many lists the two-level training runs; below it flat k-means is cheap.
TWO_LEVEL_MIN_LISTS = 1024
ITERATIONS = 12


def coarse_centroids(
    sample: npt.NDArray[np.float32], nlist: int, seed: int
) -> npt.NDArray[np.float32]:
    """``(nlist, dim)`` centroids of ``sample`` (which holds at least ``nlist`` points)."""
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    if len(sample) < nlist:
        raise ValueError(f"{len(sample)} points cannot train {nlist} centroids")
    if nlist < TWO_LEVEL_MIN_LISTS:
        return _kmeans(sample, nlist, seed)
    groups = math.isqrt(nlist)
    first = faiss.Kmeans(
        sample.shape[1],
        groups,
        niter=ITERATIONS,
        seed=seed,
        spherical=True,
        min_points_per_centroid=1,
        max_points_per_centroid=2048,
    )
    first.train(sample)
    _, assigned = first.index.search(sample, 1)
    assigned = assigned.ravel()
    sizes = np.bincount(assigned, minlength=groups)
    shares = lists_per_group(sizes, nlist)
    order = np.argsort(assigned, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    parts = []
    for group in range(groups):
        if shares[group] == 0:
            continue
        points = sample[order[bounds[group] : bounds[group + 1]]]
        parts.append(_kmeans(points, int(shares[group]), seed + 1 + group))
    centroids = np.vstack(parts)
    assert len(centroids) == nlist
    return centroids


def lists_per_group(sizes: npt.NDArray[np.int64], nlist: int) -> npt.NDArray[np.int64]:
    """Split ``nlist`` lists over groups in proportion to their points, none getting more
    lists than points (largest remainders first, ties to the lower group).

    >>> lists_per_group(np.array([90, 9, 1]), 10).tolist()
    [9, 1, 0]
    >>> lists_per_group(np.array([3, 3, 94]), 12).tolist()
    [1, 0, 11]
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if int(sizes.sum()) < nlist:
        raise ValueError(f"{int(sizes.sum())} points cannot train {nlist} centroids")
    exact = sizes * nlist / sizes.sum()
    shares: npt.NDArray[np.int64] = np.minimum(np.floor(exact).astype(np.int64), sizes)
    remainder = exact - shares
    while int(shares.sum()) < nlist:
        room = shares < sizes
        pick = int(np.argmax(np.where(room, remainder, -np.inf)))
        shares[pick] += 1
        remainder[pick] -= 1.0
    return shares


def _kmeans(points: npt.NDArray[np.float32], k: int, seed: int) -> npt.NDArray[np.float32]:
    if k >= len(points):
        return points[:k].copy()
    kmeans = faiss.Kmeans(
        points.shape[1],
        k,
        niter=ITERATIONS,
        seed=seed,
        spherical=True,
        # A few dozen points per list are plenty for the coarse split; FAISS's warning
        # below 39 would print once per group to the user's terminal.
        min_points_per_centroid=1,
    )
    kmeans.train(points)
    return np.asarray(kmeans.centroids, dtype=np.float32)
