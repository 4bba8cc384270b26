"""In-memory page vectors for the exact rerank (derived from SQL at open).

This is the host copy. On a CUDA machine the pages are also packed on the GPU by
device_search.DeviceTokenSearch, which the fused kernel ranks from in place.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from latestore.index.arena import DiskArena
from latestore.index.codec import dequantize_int8, quantize_int8

MAX_REUSED_ROWS = 262_144


def pack_pages(
    pages: Sequence[npt.NDArray[np.floating]],
) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.int64]]:
    """Concatenate per-page token matrices; returns ``(tokens, lengths)``."""
    lengths = np.fromiter((len(p) for p in pages), dtype=np.int64, count=len(pages))
    if not pages:
        return np.zeros((0, 0), dtype=np.float32), lengths
    return np.concatenate(pages, axis=0), lengths


class VectorCache:
    """Page id -> ``(n_tokens, dim)`` token matrix in the store's vector dtype."""

    def __init__(
        self,
        dim: int,
        dtype: str,
        *,
        on_disk: bool = False,
        directory: Path | None = None,
    ) -> None:
        self.dim = dim
        self.dtype = np.dtype(dtype)
        # on_disk: rows live in mapped scratch files (see arena.py), not in the heap
        self.arena = DiskArena(dim, self.dtype, directory) if on_disk else None
        self._segment_of: dict[int, int] = {}
        # float16/float32 rows, or int8 codes with their scales in _scales
        self._pages: dict[int, npt.NDArray[Any]] = {}
        self._scales: dict[int, npt.NDArray[np.float32]] = {}  # int8 only
        self._local = threading.local()
        self.total_tokens = 0

    def __len__(self) -> int:
        return len(self._pages)

    def __contains__(self, page_id: object) -> bool:
        return page_id in self._pages

    def page_ids(self) -> npt.NDArray[np.int64]:
        return np.fromiter(self._pages, dtype=np.int64, count=len(self._pages))

    def get(self, page_id: int) -> npt.NDArray[np.floating]:
        """The page's vectors as floats (int8 pages are dequantised)."""
        if self.dtype == np.int8:
            return dequantize_int8(self._pages[page_id], self._scales[page_id])
        return self._pages[page_id]

    def codes(self, page_id: int) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
        """An int8 page's codes and per-token scales, as held."""
        return self._pages[page_id], self._scales[page_id]

    def n_tokens(self, page_id: int) -> int:
        return len(self._pages[page_id])

    def put(self, page_id: int, vectors: npt.NDArray[np.floating]) -> None:
        self.discard(page_id)
        stored: npt.NDArray[Any]
        if self.dtype == np.int8:
            stored, self._scales[page_id] = quantize_int8(vectors)
        else:
            stored = np.ascontiguousarray(vectors, dtype=self.dtype)
        if self.arena is not None and len(stored):
            stored, self._segment_of[page_id] = self.arena.store(stored)
        stored.setflags(write=False)
        self._pages[page_id] = stored
        self.total_tokens += len(stored)

    def clear(self) -> None:
        """Drop every page (and the arena's mappings): frees the memory at close."""
        self._pages.clear()
        self._scales.clear()
        self._segment_of.clear()
        self.total_tokens = 0
        if self.arena is not None:
            self.arena = DiskArena(self.dim, self.dtype, self.arena.directory)

    def discard(self, page_id: int) -> None:
        self._scales.pop(page_id, None)
        old = self._pages.pop(page_id, None)
        if old is not None:
            self.total_tokens -= len(old)
        segment = self._segment_of.pop(page_id, None)
        if segment is not None and self.arena is not None and old is not None:
            self.arena.release(segment, len(old))

    def gather(
        self, page_ids: Iterable[int]
    ) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.int64]]:
        pages = [self.get(p) if self.dtype == np.int8 else self._pages[p] for p in page_ids]
        lengths = np.fromiter((len(p) for p in pages), dtype=np.int64, count=len(pages))
        if not pages:
            return pack_pages(pages)
        # Packed into a reused per-thread buffer: a fresh array per query would page-fault
        # on every touch (tens of MB for a few hundred candidates).
        total = int(lengths.sum())
        buffer = self._pack_buffer(total, pages[0].dtype)
        np.concatenate(pages, axis=0, out=buffer)
        return buffer, lengths

    def _pack_buffer(self, rows: int, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
        """Scratch for :meth:`gather`: valid until this thread's next gather."""
        if rows > MAX_REUSED_ROWS:  # exhaustive scans: do not pin hundreds of MB
            return np.empty((rows, self.dim), dtype)
        buffers: dict[Any, npt.NDArray[Any]] = self._local.__dict__.setdefault("buffers", {})
        buffer = buffers.get(dtype)
        if buffer is None or len(buffer) < rows:
            buffer = np.empty(
                (max(rows, 2 * len(buffer) if buffer is not None else rows), self.dim), dtype
            )
            buffers[dtype] = buffer
        return buffer[:rows]

    def tokens_of(self, page_ids: npt.NDArray[np.int64]) -> int:
        return int(sum(len(self._pages[int(p)]) for p in page_ids))

    def sample(self, n: int, seed: int) -> npt.NDArray[np.float32]:
        """About ``n`` token vectors drawn uniformly from all pages (IVF training)."""
        rng = np.random.default_rng(seed)
        keep = min(1.0, n / max(1, self.total_tokens))
        parts = []
        for page_id, vectors in self._pages.items():
            mask = rng.random(len(vectors)) < keep
            if mask.any():
                parts.append(np.asarray(self.get(page_id)[mask], dtype=np.float32))
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(parts)
