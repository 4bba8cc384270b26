"""Page vectors kept in memory-mapped scratch files instead of process memory.

The rerank needs every page's token vectors at hand, but only a few hundred pages per
query. Holding them all in the heap costs 256 KB per ColPali page (25 GB for 100k
pages). The arena writes them once into unlinked temporary files and maps those: the
kernel pages in what queries touch and can drop it again under memory pressure, so
the process's own (anonymous) memory no longer grows with the store.

The files are derived scratch, rebuilt from SQL at every open: they are created
unlinked (nothing is left behind after a crash) and space is reserved up front with
``posix_fallocate``, so a full disk fails a write with OSError rather than killing the
process with SIGBUS on first touch of a sparse page.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

SEGMENT_BYTES = 256 << 20


@dataclass
class _Segment:
    rows: np.memmap[Any, np.dtype[Any]]
    used: int = 0  # rows handed out so far (append-only)
    live: int = 0  # rows still referenced by a page


class DiskArena:
    """Append-only ``(rows, dim)`` storage in mapped segments of about SEGMENT_BYTES."""

    def __init__(
        self,
        dim: int,
        dtype: npt.DTypeLike,
        directory: Path | None = None,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.dim = dim
        self.dtype = np.dtype(dtype)
        self.directory = directory
        self.row_bytes = self.dtype.itemsize * dim
        self.segment_rows = max(1, segment_bytes // self.row_bytes)
        self._segments: dict[int, _Segment] = {}
        self._current = -1
        self._next_id = 0

    @property
    def mapped_bytes(self) -> int:
        return sum(len(s.rows) * self.row_bytes for s in self._segments.values())

    @property
    def segments(self) -> int:
        return len(self._segments)

    def store(self, rows: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], int]:
        """Copy ``rows`` into the arena; returns a read-only view of them and its segment."""
        n = len(rows)
        segment_id = self._segment_with_room(n)
        segment = self._segments[segment_id]
        start = segment.used
        view = segment.rows[start : start + n]
        view[...] = rows
        segment.used += n
        segment.live += n
        out = np.asarray(view)  # a plain ndarray view: keeps the mapping alive, not a memmap
        out.setflags(write=False)
        return out, segment_id

    def release(self, segment_id: int, n_rows: int) -> None:
        """Forget ``n_rows`` of a segment; a segment no page uses any more is unmapped.

        Space inside a partly used segment is not reused; the arena is rebuilt at the
        next open. Views still held elsewhere keep their mapping alive until dropped.
        """
        segment = self._segments[segment_id]
        segment.live -= n_rows
        if segment.live <= 0 and segment_id != self._current:
            del self._segments[segment_id]

    def _segment_with_room(self, n: int) -> int:
        current = self._segments.get(self._current)
        if current is not None and current.used + n <= len(current.rows):
            return self._current
        if current is not None and current.live <= 0:
            del self._segments[self._current]
        segment_id = self._next_id
        self._next_id += 1
        self._segments[segment_id] = _Segment(self._map(max(n, self.segment_rows)))
        self._current = segment_id
        return segment_id

    def _map(self, n_rows: int) -> np.memmap[Any, np.dtype[Any]]:
        size = n_rows * self.row_bytes
        with tempfile.TemporaryFile(dir=self.directory, prefix="latestore-vectors-") as f:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(f.fileno(), 0, size)
            else:  # macOS: no reservation; the file is sparse until written
                f.truncate(size)
            # The mapping holds its own reference to the file; closing ours is safe.
            return np.memmap(f, dtype=self.dtype, mode="r+", shape=(n_rows, self.dim))
