"""Page vectors packed in segments: heap-free mapped files, scratch or persisted.

The rerank needs every page's token vectors at hand, but only a few hundred pages per
query. Holding them all in the heap costs 256 KB per ColPali page (25 GB for 100k
pages). The arena appends them into segments, each one ``(rows, width)`` array backed
by a file the kernel pages in and out, so the process's own (anonymous) memory no
longer grows with the store, and pages appended together lie next to each other, so
a run of them is scored where it lies (see :meth:`VectorCache.blocks`).

A segment's file is either scratch (``ScratchFiles``: created unlinked, nothing is left
behind after a crash) or part of the persisted vector folder
(:mod:`latestore.index.vector_file`), which survives the process and is what the next
open maps instead of re-reading SQL. Space is reserved up front with
``posix_fallocate``, so a full disk fails a write with OSError rather than killing the
process with SIGBUS on first touch of a sparse page.

Rows are append-only: a row handed out is never written again while a segment is
mapped, which is what makes a published segment safe to read from other processes and
to map again after a crash. Deleted pages leave holes; :meth:`Arena.compactable` names
the sealed segments less than half alive, whose pages the cache moves out.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import xxhash

SEGMENT_BYTES = 64 << 20
# A small store's first segment is small; each new one doubles, up to SEGMENT_BYTES.
FIRST_SEGMENT_BYTES = 1 << 20


class Backing(Protocol):
    """Where a new segment's rows live."""

    def create(self, segment_id: int, n_rows: int, width: int, dtype: np.dtype[Any]) -> Any:
        """A writable ``(n_rows, width)`` array (usually a memmap)."""
        ...


class ScratchFiles:
    """Segments in unlinked temporary files: derived scratch, gone with the process."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory

    def create(self, segment_id: int, n_rows: int, width: int, dtype: np.dtype[Any]) -> Any:
        with tempfile.TemporaryFile(dir=self.directory, prefix="latestore-vectors-") as f:
            reserve(f.fileno(), n_rows * width * dtype.itemsize)
            # The mapping holds its own reference to the file; closing ours is safe.
            return np.memmap(f, dtype=dtype, mode="r+", shape=(n_rows, width))


class HeapSegments:
    """Segments in process memory (``vector_cache="memory"`` keeps pages apart; this is
    for a persisted folder's reader, whose own writes are private)."""

    def create(self, segment_id: int, n_rows: int, width: int, dtype: np.dtype[Any]) -> Any:
        return np.empty((n_rows, width), dtype)


def reserve(fd: int, size: int) -> None:
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, 0, max(1, size))
    else:  # macOS: no reservation; the file is sparse until written
        os.ftruncate(fd, size)


@dataclass
class Segment:
    rows: Any  # (capacity, width) array; np.memmap for files
    used: int = 0  # rows handed out so far (append-only)
    live: int = 0  # rows still referenced by a page
    writable: bool = True
    # Checksums of the published row ranges: [(end_row, xxh3_64 of rows since the
    # previous end)], and the running hash of the rows appended since (see vector_file).
    extents: list[tuple[int, int]] = field(default_factory=list)
    pending: Any = None  # xxhash.xxh3_64 over rows [extents[-1].end, used)


class Arena:
    """Append-only ``(rows, width)`` storage in segments of about ``segment_bytes``."""

    def __init__(
        self,
        width: int,
        dtype: npt.DTypeLike,
        backing: Backing,
        segment_bytes: int = SEGMENT_BYTES,
        *,
        checksums: bool = False,
        first_segment_bytes: int = FIRST_SEGMENT_BYTES,
    ) -> None:
        self.width = width
        self.dtype = np.dtype(dtype)
        self.backing = backing
        self.row_bytes = self.dtype.itemsize * width
        self.segment_rows = max(1, segment_bytes // self.row_bytes)
        self.first_rows = max(1, min(self.segment_rows, first_segment_bytes // self.row_bytes))
        self.checksums = checksums
        self._segments: dict[int, Segment] = {}
        self._current = -1
        self.next_id = 0
        self.dead: list[int] = []  # segments dropped since the owner last looked

    @property
    def mapped_bytes(self) -> int:
        return sum(len(s.rows) * self.row_bytes for s in self._segments.values())

    @property
    def segments(self) -> int:
        return len(self._segments)

    @property
    def current(self) -> int:
        return self._current

    def items(self) -> list[tuple[int, Segment]]:
        return sorted(self._segments.items())

    def segment(self, segment_id: int) -> Segment:
        return self._segments[segment_id]

    def adopt(self, segment_id: int, segment: Segment) -> None:
        """Take over a segment mapped from a published folder (read-only: sealed)."""
        self._segments[segment_id] = segment
        self.next_id = max(self.next_id, segment_id + 1)

    def store(self, rows: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], int]:
        """Copy ``rows`` into the arena; returns a read-only view of them and its segment."""
        view, segment_id, _ = self.store_at(rows)
        return view, segment_id

    def store_at(self, rows: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], int, int]:
        """As :meth:`store`, with the first row's index in the segment."""
        n = len(rows)
        segment_id = self._segment_with_room(n)
        segment = self._segments[segment_id]
        start = segment.used
        view = segment.rows[start : start + n]
        view[...] = rows
        if segment.pending is not None:
            segment.pending.update(np.ascontiguousarray(view).view(np.uint8))
        segment.used += n
        segment.live += n
        return read_only(view), segment_id, start

    def release(self, segment_id: int, n_rows: int) -> None:
        """Forget ``n_rows`` of a segment; a segment no page uses any more is dropped.

        Views still held elsewhere keep their mapping alive until dropped.
        """
        segment = self._segments[segment_id]
        segment.live -= n_rows
        if segment.live <= 0 and segment_id != self._current:
            self._drop(segment_id)

    def compactable(self) -> list[int]:
        """Sealed segments less than half alive: moving their pages out frees them.

        Half keeps the space at most twice what is alive and costs at most one copy of
        a live row per row deleted beside it.
        """
        return [
            i
            for i, s in self._segments.items()
            if i != self._current and s.used and 2 * s.live < s.used
        ]

    def seal(self) -> None:
        """Stop appending to the current segment (a new one is started on demand)."""
        current, self._current = self._current, -1
        segment = self._segments.get(current)
        if segment is not None and segment.live <= 0:
            self._drop(current)
        elif segment is not None:
            unmap_written(segment.rows)

    def clear(self) -> None:
        self._segments.clear()
        self._current = -1

    def _drop(self, segment_id: int) -> None:
        del self._segments[segment_id]
        self.dead.append(segment_id)

    def _segment_with_room(self, n: int) -> int:
        current = self._segments.get(self._current)
        if current is not None and current.used + n <= len(current.rows):
            return self._current
        if current is not None and current.live <= 0:
            self._drop(self._current)
        elif current is not None:
            unmap_written(current.rows)
        held = sum(s.live for s in self._segments.values())
        rows = min(self.segment_rows, max(self.first_rows, held))
        segment_id = self.next_id
        self.next_id += 1
        array = self.backing.create(segment_id, max(n, rows), self.width, self.dtype)
        pending = xxhash.xxh3_64() if self.checksums else None
        self._segments[segment_id] = Segment(array, pending=pending)
        self._current = segment_id
        return segment_id


class DiskArena(Arena):
    """An arena of unlinked scratch files (``vector_cache="disk"`` without a folder)."""

    def __init__(
        self,
        dim: int,
        dtype: npt.DTypeLike,
        directory: Path | None = None,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        super().__init__(
            dim, dtype, ScratchFiles(directory), segment_bytes, first_segment_bytes=segment_bytes
        )
        self.directory = directory


def unmap_written(rows: Any) -> None:
    """Drop a filled file segment's pages from this process's resident set.

    Writing through the mapping leaves every written page mapped in the writer, so a
    build's RSS grew with the store (about 256 B per 128-dim token) though no search
    reads those pages. For a shared file mapping ``MADV_DONTNEED`` only unmaps: the
    rows stay in the page cache (dirty ones are still written back; msync still
    flushes them) and a later read faults them in again. Heap segments are left alone:
    on anonymous memory the same call would zero them.
    """
    if not isinstance(rows, np.memmap) or rows.mode not in ("r+", "w+"):
        return
    mapping = getattr(rows, "_mmap", None)
    if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


def read_only(view: npt.NDArray[Any]) -> npt.NDArray[Any]:
    out = np.asarray(view)  # a plain ndarray view: keeps the mapping alive, not a memmap
    out.setflags(write=False)
    return out
