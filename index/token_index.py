"""FAISS candidate index over document token vectors.

FAISS ids encode ``(page_id << 20) | token_position`` so a hit names its page without
any lookup. The index starts exact (flat inner product) and is rebuilt as a trained
IVF index once the store holds enough tokens for that to pay off.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from latestore.index.coarse_kmeans import coarse_centroids
from latestore.index.snapshot import StreamedSection
from latestore.index.threads import bulk_threads

# The id layout, re-exported where it was first defined.
from latestore.index.token_ids import MAX_TOKENS_PER_PAGE as MAX_TOKENS_PER_PAGE
from latestore.index.token_ids import TOKEN_BITS as TOKEN_BITS
from latestore.index.token_ids import TOKEN_MASK as TOKEN_MASK
from latestore.index.token_ids import pages_of as pages_of
from latestore.index.token_ids import token_ids as token_ids

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexParams:
    """How the candidate index is built (recorded in the store config)."""

    ivf_min_tokens: int = 100_000
    ivf_nlist: int | None = None  # None: auto_nlist (from ivf_min_tokens)
    ivf_codec: str = "PQ"  # "PQ" (dim/8 bytes per token), "SQ8", "SQfp16" or "Flat"
    train_sample_per_list: int = 64
    seed: int = 1234


_GPU_RESOURCES: list[Any] = []


def gpu_available() -> bool:
    """True when the installed faiss has GPU support and a CUDA device is visible."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _gpu_resources() -> Any:
    if not _GPU_RESOURCES:
        _GPU_RESOURCES.append(faiss.StandardGpuResources())
    return _GPU_RESOURCES[0]


# The IVF is trained once, when the store first reaches ``ivf_min_tokens``, and never
# re-trained by a write (see LateInteractionIndex.maybe_train). Its list count is
# therefore a function of the settings alone, never of how many tokens happened to be
# there when training ran: a store streamed in batches and the same pages added as one
# list end with the same index. 4096 lists keep one token's assignment cheap
# (128-dim: 0.5M multiply-adds, a few microseconds) and lists short enough to scan
# well past 100M tokens; SearchParams.widened widens the search as lists grow.
MAX_AUTO_NLIST = 4096
# k-means wants a few dozen points per centroid; fewer lists when ivf_min_tokens is small.
MIN_TRAIN_POINTS_PER_LIST = 24
# ``nprobe`` is meant for lists of about this many tokens (what sqrt(n) lists gave at
# 1M tokens). While the store is small for its list count, the search probes
# proportionally more lists, so it scans as many tokens as such lists would hold.
FULL_LIST_TOKENS = 1024


def auto_nlist(params: IndexParams) -> int:
    """The IVF list count the settings give: ``ivf_nlist``, else the largest power of
    two (at most MAX_AUTO_NLIST) that ``ivf_min_tokens`` tokens can train."""
    if params.ivf_nlist is not None:
        return params.ivf_nlist
    trainable = max(1, params.ivf_min_tokens // MIN_TRAIN_POINTS_PER_LIST)
    return int(min(MAX_AUTO_NLIST, 2 ** int(math.log2(trainable))))


class TokenIndex:
    """The candidate index plus the page -> token-count map it was built from."""

    def __init__(self, dim: int, params: IndexParams, index: Any | None = None) -> None:
        self.dim = dim
        self.params = params
        self.index: Any = index if index is not None else self._flat()
        self.page_tokens: dict[int, int] = {}
        self._gpu_index: Any | None = None  # a cache of `index`; the CPU index is persisted
        # The snapshot section `index` views without a copy (borrowed), or None when
        # FAISS owns its arrays. A viewed index searches but cannot grow or shrink.
        self._borrowed: Any | None = None

    @classmethod
    def viewing(cls, dim: int, params: IndexParams, section: Any) -> TokenIndex:
        """An index over a (mapped) serialized FAISS index, read without copying it.

        Opening a 16M-token store read 400 MB of inverted lists into FAISS's own arrays;
        viewed in place, its open costs nothing and the kernel pages in the lists that
        searches probe. The first write makes FAISS's own copy (:meth:`_own`): FAISS
        aborts the process on a resize of a viewed array.
        """
        array = np.frombuffer(section, dtype=np.uint8)
        reader = faiss.ZeroCopyIOReader(faiss.swig_ptr(array), array.size)  # type: ignore[attr-defined]
        out = cls(dim, params, faiss.read_index(reader))
        out._borrowed = (section, array)  # FAISS keeps raw pointers into it
        return out

    @property
    def borrowed(self) -> bool:
        return self._borrowed is not None

    def _own(self) -> None:
        """Copy a viewed index into FAISS's own arrays before it changes."""
        if self._borrowed is None:
            return
        from latestore.index.snapshot import deserialize_faiss

        section, _ = self._borrowed
        self.index = deserialize_faiss(section)
        self._borrowed = None
        self._gpu_index = None

    @property
    def kind(self) -> str:
        return "ivf" if self.is_ivf else "flat"

    @property
    def is_ivf(self) -> bool:
        return faiss.try_extract_index_ivf(self.index) is not None

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "kind": self.kind,
            "tokens": self.ntotal,
            "pages": len(self.page_tokens),
        }
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            info.update(nlist=int(ivf.nlist), codec=self.params.ivf_codec)
        return info

    def _flat(self) -> Any:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def add(self, page_ids: list[int], vectors: list[npt.NDArray[Any]]) -> None:
        if not page_ids:
            return
        ids = np.concatenate([token_ids(p, len(v)) for p, v in zip(page_ids, vectors, strict=True)])
        data = np.ascontiguousarray(np.concatenate(vectors), dtype=np.float32)
        self._own()
        with bulk_threads():
            self.index.add_with_ids(data, ids)
        self._gpu_index = None
        for page_id, v in zip(page_ids, vectors, strict=True):
            self.page_tokens[page_id] = len(v)

    def remove(self, page_ids: list[int]) -> None:
        present = [p for p in page_ids if p in self.page_tokens]
        if not present:
            return
        ids = np.concatenate([token_ids(p, self.page_tokens[p]) for p in present])
        self._own()
        self.index.remove_ids(faiss.IDSelectorBatch(ids))
        self._gpu_index = None
        for page_id in present:
            del self.page_tokens[page_id]

    def train_ivf(self, sample: npt.NDArray[np.float32], n_tokens: int) -> None:
        """Replace the index by an empty trained IVF index (caller re-adds the tokens)."""
        nlist = min(auto_nlist(self.params), max(1, len(sample)))
        codec = self.params.ivf_codec
        if codec == "PQ":
            codec = f"PQ{max(1, self.dim // 8)}"
        index = faiss.index_factory(self.dim, f"IVF{nlist},{codec}", faiss.METRIC_INNER_PRODUCT)
        ivf: Any = faiss.downcast_index(faiss.extract_index_ivf(index))
        # Given nlist centroids, FAISS's own training skips the coarse k-means and
        # trains only the codec on the residuals.
        with bulk_threads():
            ivf.quantizer.add(coarse_centroids(sample, nlist, self.params.seed))
        if isinstance(ivf, faiss.IndexIVFPQ):
            # Polysemous training (on by default) only serves Hamming pre-filtering,
            # which we never use, and costs minutes on a laptop CPU.
            ivf.do_polysemous_training = False  # type: ignore[attr-defined]
            ivf.pq.cp.niter = 10
            ivf.pq.cp.seed = self.params.seed
        log.info("training IVF%d,%s on %d of %d tokens", nlist, codec, len(sample), n_tokens)
        with bulk_threads():
            index.train(np.ascontiguousarray(sample, dtype=np.float32))
        self.index = index
        self._borrowed = None
        self.page_tokens = {}
        self._gpu_index = None

    def search(
        self,
        queries: npt.NDArray[np.float32],
        k: int,
        *,
        nprobe: int,
        selector: Any | None = None,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The ``k`` best tokens per query token: ``(scores, ids)``, id -1 where none."""
        k = max(1, min(k, max(1, self.ntotal)))
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.is_ivf:
            nprobe = self.probes(nprobe)
            params: Any = faiss.SearchParametersIVF()
            params.nprobe = nprobe
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        # FAISS GPU indexes take no id selector: filtered searches stay on the CPU copy,
        # and neither takes k over 2048 (a widened search of a large store).
        searcher = self._gpu() if selector is None and k <= 2048 else None
        if searcher is not None:
            if self.is_ivf:
                searcher.nprobe = min(nprobe, 2048)
            scores, ids = searcher.search(queries, k)
        else:
            scores, ids = self.index.search(queries, k, params=params)
        return scores, ids

    def probes(self, nprobe: int) -> int:
        """The lists to probe for ``nprobe``: more while lists are short (FULL_LIST_TOKENS)."""
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is None:
            return nprobe
        nlist = int(ivf.nlist)
        mean = self.ntotal / nlist
        if mean >= FULL_LIST_TOKENS:
            return min(nprobe, nlist)
        return min(nlist, math.ceil(nprobe * FULL_LIST_TOKENS / max(1.0, mean)))

    def _gpu(self) -> Any | None:
        """The GPU copy of the index, built lazily when faiss and CUDA both allow it."""
        if self._gpu_index is None and gpu_available() and self.ntotal > 0:
            try:
                self._gpu_index = faiss.index_cpu_to_gpu(_gpu_resources(), 0, self.index)
            except RuntimeError as exc:  # e.g. a codec the GPU build does not support
                log.warning("FAISS GPU copy unavailable (%s); searching on the CPU", exc)
                return None
        return self._gpu_index

    def to_bytes(self) -> memoryview:
        """The serialized index: one copy (FAISS's array), viewed, not copied again."""
        array: Any = faiss.serialize_index(self.index)
        return memoryview(array)

    def streamed(self) -> StreamedSection:
        """The serialized index as a snapshot section written in chunks: a snapshot of a
        64M-token store no longer holds a second 1.7 GB copy of the index in memory."""

        def stream(sink: Callable[[Any], None]) -> None:
            def take(chunk: bytes) -> int:
                sink(chunk)
                return len(chunk)

            writer = faiss.PyCallbackIOWriter(take, 1 << 22)  # type: ignore[attr-defined]
            faiss.write_index(self.index, writer)

        return StreamedSection(stream)

    @classmethod
    def from_bytes(
        cls, blob: bytes, dim: int, params: IndexParams, page_tokens: dict[int, int]
    ) -> TokenIndex:
        index = faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
        if index.d != dim:
            raise ValueError(f"index dim {index.d} != store dim {dim}")
        out = cls(dim, params, index)
        out.page_tokens = dict(page_tokens)
        if out.ntotal != sum(page_tokens.values()):
            raise ValueError("index token count disagrees with its page map")
        return out


def selector_for_pages(allowed: npt.NDArray[np.int64], page_tokens: dict[int, int]) -> Any:
    """A FAISS selector admitting exactly the tokens of ``allowed`` pages.

    When most pages are allowed, the complement is smaller to build, so the selector
    then excludes the disallowed pages instead.
    """
    allowed_set = set(allowed.tolist())
    if len(allowed_set) * 2 <= len(page_tokens):
        chosen = [p for p in allowed_set if p in page_tokens]
        invert = False
    else:
        chosen = [p for p in page_tokens if p not in allowed_set]
        invert = True
    if chosen:
        ids = np.concatenate([token_ids(p, page_tokens[p]) for p in chosen])
    else:
        ids = np.zeros(0, dtype=np.int64)
    batch = faiss.IDSelectorBatch(ids)
    if not invert:
        return _KeepAlive(batch, batch)
    return _KeepAlive(faiss.IDSelectorNot(batch), batch)


class _KeepAlive:
    """Holds a selector and the objects it points to (FAISS keeps raw pointers)."""

    def __init__(self, selector: Any, *refs: Any) -> None:
        self.selector = selector
        self.refs = refs
