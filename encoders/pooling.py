"""Token pooling: fewer page vectors at almost the same retrieval quality.

Following Clavié et al. (2024, "Reducing the Footprint of Multi-Vector Retrieval with
Minimal Performance Impact via Token Pooling", the method PyLate ships), a page's token
vectors are grouped by Ward hierarchical clustering into
``max(1, n_tokens // pool_factor)`` clusters; each cluster becomes the L2-normalised
mean of its members. Queries are never pooled: MaxSim needs every query token.

Ward linkage uses scipy's C implementation (nearest-neighbour chain, O(n²)); a pure
numpy agglomeration would be O(n³) per page. A page read in windows is pooled over all
its windows' vectors together, as one page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from latestore.encoders.base import (
    Encoder,
    PageContent,
    TokenVectors,
    fingerprint_of,
    l2_normalise,
    superseded_by,
)
from latestore.encoders.windows import EncodedPage, WindowedEncoder, WindowSettings, as_windowed
from latestore.errors import EncoderError

__all__ = ["PooledEncoder", "pool_tokens"]


def pool_tokens(vectors: TokenVectors, pool_factor: int) -> TokenVectors:
    """Pool one page's ``(n_tokens, dim)`` vectors into about ``n_tokens / pool_factor``.

    Parameters
    ----------
    vectors:
        L2-normalised token vectors of one page.
    pool_factor:
        Target reduction; 1 returns the vectors unchanged.

    Returns
    -------
    numpy.ndarray
        ``(n_clusters, dim)`` float32, rows L2-normalised, clusters in order of their
        first token (so the result is deterministic).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> pooled = pool_tokens(l2_normalise(rng.normal(size=(12, 8))), pool_factor=3)
    >>> pooled.shape
    (4, 8)
    """
    if pool_factor < 1:
        raise EncoderError(f"pool_factor must be >= 1, got {pool_factor}")
    n_tokens = vectors.shape[0]
    target = max(1, n_tokens // pool_factor)
    if pool_factor == 1 or n_tokens <= 1 or target >= n_tokens:
        return np.ascontiguousarray(vectors, dtype=np.float32)
    from scipy.cluster.hierarchy import fcluster, linkage

    data = np.asarray(vectors, dtype=np.float64)
    if target == 1:
        labels = np.ones(n_tokens, dtype=np.int64)
    else:
        labels = fcluster(linkage(data, method="ward"), t=target, criterion="maxclust")
    # Order clusters by first member so identical input gives identical row order.
    _, first = np.unique(labels, return_index=True)
    ordered = labels[np.sort(first)]
    means = np.stack([data[labels == label].mean(axis=0) for label in ordered])
    return l2_normalise(means)


class PooledEncoder:
    """Wrap any encoder so that its page vectors are token-pooled.

    Parameters
    ----------
    inner:
        The encoder to wrap; queries pass through unchanged.
    pool_factor:
        Reduction factor (2 or 3 keep nearly all quality in the paper's tests).

    Notes
    -----
    The fingerprint covers the inner fingerprint, the method and the factor, so a store
    built with pooling refuses an unpooled encoder and vice versa.
    """

    def __init__(self, inner: Encoder, pool_factor: int = 2) -> None:
        if pool_factor < 1:
            raise EncoderError(f"pool_factor must be >= 1, got {pool_factor}")
        self.inner = inner
        self.pool_factor = pool_factor
        self.name = f"{inner.name}+pool{pool_factor}"
        self.dim = inner.dim
        self.device = inner.device
        self.batch_size = inner.batch_size
        self.spec: str = str(getattr(inner, "spec", inner.name))
        self.fingerprint = self._pooled(inner.fingerprint)
        # The inner model's earlier revisions, pooled alike: a pooled store of an earlier
        # revision opens (an unpooled one stays refused).
        self.supersedes = tuple(self._pooled(f) for f in superseded_by(inner))
        self.revision_note: str = getattr(inner, "revision_note", "")

    def _pooled(self, inner_fingerprint: str) -> str:
        return fingerprint_of(
            {"inner": inner_fingerprint, "pooling": "ward-mean", "pool_factor": self.pool_factor}
        )

    def __getattr__(self, attribute: str) -> Any:
        # Only reached for names not set above (e.g. dtype, prompts): defer to the model.
        if attribute == "inner":
            raise AttributeError(attribute)
        return getattr(self.inner, attribute)

    def encode_queries(self, queries: Sequence[str]) -> list[TokenVectors]:
        return self.inner.encode_queries(queries)

    def encode_pages(self, pages: Sequence[PageContent]) -> list[TokenVectors]:
        return [pool_tokens(v, self.pool_factor) for v in self.inner.encode_pages(pages)]

    # Defined here, not left to __getattr__: forwarded, they would skip the pooling.
    @property
    def windowing(self) -> WindowSettings:
        return self._windowed().windowing

    def with_windowing(self, settings: WindowSettings) -> PooledEncoder:
        inner: Any = self._windowed().with_windowing(settings)
        return PooledEncoder(inner, self.pool_factor)

    def encode_pages_with_counts(self, pages: Sequence[PageContent]) -> list[EncodedPage]:
        return [
            EncodedPage(pool_tokens(p.vectors, self.pool_factor), p.text_tokens, p.tokens_dropped)
            for p in self._windowed().encode_pages_with_counts(pages)
        ]

    def _windowed(self) -> WindowedEncoder:
        inner = as_windowed(self.inner)
        if inner is None:
            raise AttributeError(f"{self.inner.name!r} does not read pages in windows")
        return inner
