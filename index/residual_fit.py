"""Fitting and packing the residual codes of :mod:`latestore.index.residual_codec`.

* ``scalar``: per-dimension buckets (:func:`fit_buckets`, Lloyd-Max from the
  quantiles) and bucket numbers packed ``8 / nbits`` to a byte (:func:`pack`).
* ``pq``: a product quantiser's table, 256 sub-vectors of ``8 / nbits`` dimensions per
  byte position (:func:`fit_table`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

LLOYD_STEPS = 4

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


def pack(buckets: U8, nbits: int) -> U8:
    """``(n, dim)`` bucket numbers < 2**nbits -> ``(n, dim * nbits / 8)`` bytes."""
    per_byte = 8 // nbits
    grouped = buckets.reshape(len(buckets), -1, per_byte).astype(np.uint8)
    shifts = (np.arange(per_byte, dtype=np.uint8) * nbits)[None, None, :]
    packed: U8 = np.bitwise_or.reduce(grouped << shifts, axis=2).astype(np.uint8)
    return packed


def unpack(packed: U8, dim: int, nbits: int) -> U8:
    """Inverse of :func:`pack`."""
    per_byte = 8 // nbits
    shifts = (np.arange(per_byte, dtype=np.uint8) * nbits)[None, None, :]
    mask = np.uint8((1 << nbits) - 1)
    out: U8 = ((packed[:, :, None] >> shifts) & mask).reshape(len(packed), dim)
    return out


def fit_buckets(residuals: F32, nbits: int) -> tuple[F32, F32]:
    """Per-dimension cut points and bucket values for ``residuals`` (Lloyd-Max)."""
    levels = 1 << nbits
    quantiles = np.arange(1, levels) / levels
    cutoffs = np.quantile(residuals, quantiles, axis=0).T.astype(np.float32)  # (dim, L-1)
    weights = np.zeros((residuals.shape[1], levels), dtype=np.float32)
    for _ in range(LLOYD_STEPS):
        for d in range(residuals.shape[1]):
            column = residuals[:, d]
            which = np.searchsorted(cutoffs[d], column, side="right")
            sums = np.bincount(which, weights=column, minlength=levels)
            counts = np.bincount(which, minlength=levels)
            # An empty bucket keeps a value between its cut points.
            edges = np.concatenate([[cutoffs[d][0]], cutoffs[d], [cutoffs[d][-1]]])
            fallback = (edges[:-1] + edges[1:]) / 2
            weights[d] = np.where(counts > 0, sums / np.maximum(counts, 1), fallback)
        cutoffs = ((weights[:, :-1] + weights[:, 1:]) / 2).astype(np.float32)
    return cutoffs, weights


def fit_table(residuals: F32, nbits: int, seed: int) -> F32:
    """Product quantiser of ``residuals``: 256 sub-vectors of ``8 / nbits`` dimensions
    per byte position (FAISS k-means per position), rounded to float16 as stored."""
    import faiss

    dim = residuals.shape[1]
    per_byte = 8 // nbits
    pq = faiss.ProductQuantizer(dim, dim // per_byte, 8)
    pq.cp.seed = seed
    pq.cp.min_points_per_centroid = 1  # small first writes: train anyway, no warning
    pq.verbose = False
    if len(residuals) < 256:
        # FAISS needs a point per code: repeat a tiny sample (its codes then coincide).
        residuals = np.resize(residuals, (256, dim))
    pq.train(np.ascontiguousarray(residuals, dtype=np.float32))
    table = faiss.vector_to_array(pq.centroids).reshape(dim // per_byte, 256, per_byte)
    return np.asarray(table.astype(np.float16), dtype=np.float32)
