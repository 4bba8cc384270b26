"""Page vectors for the exact rerank: in the heap, in scratch files, or persisted.

Three homes, one interface:

* ``memory``: one array per page in the heap;
* scratch: pages packed in unlinked mapped files (:class:`~latestore.index.arena.DiskArena`),
  rebuilt from SQL at every open;
* persisted: pages packed in the store's vector folder
  (:mod:`latestore.index.vector_file`), mapped at open without reading or copying them,
  tied to a change number, so opening replays only what changed since.

Pages appended together lie next to each other, so :meth:`VectorCache.blocks` hands
the scorer runs of pages as views where they lie instead of a per-query copy.

On a CUDA machine the pages are also packed on the GPU by
device_search.DeviceTokenSearch, which the fused kernel ranks from in place.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from latestore.errors import IndexSnapshotError
from latestore.index.arena import Arena, DiskArena, HeapSegments, read_only
from latestore.index.codec import dequantize_int8, quantize_int8
from latestore.index.vector_file import VectorFolder, verify_segments

log = logging.getLogger("latestore")

MAX_REUSED_ROWS = 262_144
# Errors of a folder that cannot take more rows (full, over quota, read-only, not ours):
# the rows are derived from SQL, so the cache holds them in memory instead of failing.
UNWRITABLE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def pack_pages(
    pages: Sequence[npt.NDArray[np.floating]],
) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.int64]]:
    """Concatenate per-page token matrices; returns ``(tokens, lengths)``."""
    lengths = np.fromiter((len(p) for p in pages), dtype=np.int64, count=len(pages))
    if not pages:
        return np.zeros((0, 0), dtype=np.float32), lengths
    return np.concatenate(pages, axis=0), lengths


@dataclass(frozen=True)
class Block:
    """Whole pages to score together: ``parts`` concatenated are their tokens (a run of
    adjacent pages is one part, a view where it lies), ``lengths`` tokens per page."""

    parts: list[npt.NDArray[Any]]
    lengths: npt.NDArray[np.int64]


class PageRows:
    """Page id -> rows bookkeeping shared by the page caches (float and code rows):
    subclasses fill ``_pages`` and keep ``total_tokens``, the sum of their lengths."""

    _pages: dict[int, npt.NDArray[Any]]
    total_tokens: int

    def __len__(self) -> int:
        return len(self._pages)

    def __contains__(self, page_id: object) -> bool:
        return page_id in self._pages

    def page_ids(self) -> npt.NDArray[np.int64]:
        return np.fromiter(self._pages, dtype=np.int64, count=len(self._pages))

    def n_tokens(self, page_id: int) -> int:
        return len(self._pages[page_id])

    def tokens_of(self, page_ids: npt.NDArray[np.int64]) -> int:
        return int(sum(len(self._pages[int(p)]) for p in page_ids))


class VectorCache(PageRows):
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
        # int8 rows are packed as dim code bytes then the float32 scale's 4 bytes.
        self.width = dim + 4 if self.dtype == np.int8 else dim
        self.row_dtype = np.dtype(np.uint8) if self.dtype == np.int8 else self.dtype
        # on_disk: rows live in mapped scratch files (see arena.py), not in the heap
        self.arena: Arena | None = (
            DiskArena(self.width, self.row_dtype, directory) if on_disk else None
        )
        self.folder: VectorFolder | None = None
        self._where: dict[int, tuple[int, int]] = {}  # page -> (segment, first row)
        self._in_segment: dict[int, set[int]] = {}
        # float16/float32 rows, or int8 codes with their scales in _scales
        self._pages: dict[int, npt.NDArray[Any]] = {}
        self._scales: dict[int, npt.NDArray[np.float32]] = {}  # int8 only
        self._local = threading.local()
        self.total_tokens = 0
        self.damaged: set[int] = set()  # pages whose rows failed their checksum
        self._damage_lock = threading.Lock()
        self._stop_verify = threading.Event()
        self._verifier: threading.Thread | None = None
        # Why pages the arena should hold on disk are held in memory instead (None: they
        # are not): the folder or scratch directory could not be written.
        self.fallback: str | None = None

    def get(self, page_id: int) -> npt.NDArray[np.floating]:
        """The page's vectors as floats (int8 pages are dequantised)."""
        if self.dtype == np.int8:
            return dequantize_int8(self._pages[page_id], self._scales[page_id])
        return self._pages[page_id]

    def codes(self, page_id: int) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
        """An int8 page's codes and per-token scales, as held."""
        return self._pages[page_id], self._scales[page_id]

    def put(self, page_id: int, vectors: npt.NDArray[np.floating]) -> None:
        if self.dtype == np.int8:
            codes, scales = quantize_int8(vectors)
            rows: npt.NDArray[Any] = np.empty((len(codes), self.width), np.uint8)
            rows[:, : self.dim] = codes.view(np.uint8)
            rows[:, self.dim :] = scales.view(np.uint8).reshape(-1, 4)
        else:
            rows = np.ascontiguousarray(vectors, dtype=self.dtype)
        self._put_rows(page_id, rows)

    def _put_rows(self, page_id: int, rows: npt.NDArray[Any]) -> None:
        """Hold ``rows`` (packed for int8) as the page; no other copy of it remains."""
        self.discard(page_id)
        if self.arena is not None and len(rows):
            try:
                stored = self.arena.store_at(rows)
            except OSError as exc:
                if exc.errno not in UNWRITABLE:
                    raise
                self._fall_back(exc)
                stored = self.arena.store_at(rows)  # now in the heap
            rows, segment, start = stored
            self._place(page_id, segment, start)
        self._hold(page_id, read_only(rows))

    def _fall_back(self, exc: OSError) -> None:
        """The disk refused a new segment: keep the pages held so far (their files stay
        mapped), hold new ones in memory, and stop writing the folder for this session.
        The next open finds the folder's last published state and replays what SQL
        changed since, or rebuilds it, so nothing is lost and searches go on."""
        assert self.arena is not None
        where = self.folder.directory if self.folder is not None else "the scratch directory"
        self.fallback = f"cannot write {where} ({exc.strerror or exc}); new pages held in memory"
        log.warning("latestore: %s", self.fallback)
        if self.folder is not None and self.folder.writer:
            # Give back the space reserved past the rows in use: the disk is full.
            self.folder.trim(self.arena.items(), self.arena.row_bytes)
        if self.folder is not None:
            self.detach()
        else:
            self.arena.backing = HeapSegments()
            self.arena.seal()

    def _place(self, page_id: int, segment: int, row: int) -> None:
        self._where[page_id] = (segment, row)
        self._in_segment.setdefault(segment, set()).add(page_id)

    def _hold(self, page_id: int, rows: npt.NDArray[Any]) -> None:
        if self.dtype == np.int8:  # packed rows: views of codes and scales
            self._pages[page_id] = rows[:, : self.dim].view(np.int8)
            self._scales[page_id] = rows[:, self.dim :].view(np.float32)[:, 0]
        else:
            self._pages[page_id] = rows
        self.total_tokens += len(rows)

    def clear(self) -> None:
        """Drop every page (and the arena's mappings): frees the memory at close."""
        self.stop_verifying()
        if self.folder is not None and self.folder.writer and self.arena is not None:
            self.folder.trim(self.arena.items(), self.arena.row_bytes)
        self._pages.clear()
        self._scales.clear()
        self._where.clear()
        self._in_segment.clear()
        self.total_tokens = 0
        if isinstance(self.arena, DiskArena):
            self.arena = DiskArena(self.width, self.row_dtype, self.arena.directory)
        elif self.arena is not None:
            self.arena.clear()
        if self.folder is not None:
            self.folder.unlock()

    def discard(self, page_id: int) -> None:
        self._scales.pop(page_id, None)
        old = self._pages.pop(page_id, None)
        if old is not None:
            self.total_tokens -= len(old)
        where = self._where.pop(page_id, None)
        if where is not None and self.arena is not None and old is not None:
            segment = where[0]
            self._in_segment[segment].discard(page_id)
            if not self._in_segment[segment]:
                del self._in_segment[segment]
            self.arena.release(segment, len(old))

    def _compact(self, segment: int) -> None:
        """Move a sparse segment's pages to the current one; the segment then drops."""
        for page_id in sorted(self._in_segment.get(segment, ())):
            # re-appended as stored: int8 codes stay bit-identical
            self._put_rows(page_id, self._packed_rows(page_id))

    def _packed_rows(self, page_id: int) -> npt.NDArray[Any]:
        """A page's rows as stored (packed for int8), for moving them unchanged."""
        assert self.arena is not None
        segment, row = self._where[page_id]
        n = len(self._pages[page_id])
        return np.array(self.arena.segment(segment).rows[row : row + n])

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

    def blocks(self, page_ids: Sequence[int], max_tokens: int) -> Iterator[Block]:
        """``page_ids`` in order, in blocks of about ``max_tokens`` tokens, without a copy:
        pages adjacent in a segment come as one view (the whole block, when the ids are
        in storage order), others as their own views. int8 pages in the arena come as
        their packed rows (codes and scales, ``uint8``), dequantised by the scorer into
        its block; others as floats."""
        parts: list[npt.NDArray[Any]] = []
        lengths: list[int] = []
        tokens = 0
        run_segment, run_start, run_end = -1, 0, 0
        where = self._where
        for page_id in page_ids:
            n = len(self._pages[page_id])
            if lengths and tokens + n > max_tokens:
                if run_end > run_start:
                    parts.append(self._run(run_segment, run_start, run_end))
                yield Block(parts, np.asarray(lengths, dtype=np.int64))
                parts, lengths, tokens, run_end, run_start = [], [], 0, 0, 0
            place = where.get(page_id)
            if place is not None and place[0] == run_segment and place[1] == run_end:
                run_end += n  # extends the current run of adjacent pages
            else:
                if run_end > run_start:
                    parts.append(self._run(run_segment, run_start, run_end))
                if place is None:
                    parts.append(self.get(page_id))
                    run_segment, run_start, run_end = -1, 0, 0
                else:
                    run_segment, run_start, run_end = place[0], place[1], place[1] + n
            lengths.append(n)
            tokens += n
        if lengths:
            if run_end > run_start:
                parts.append(self._run(run_segment, run_start, run_end))
            yield Block(parts, np.asarray(lengths, dtype=np.int64))

    def _run(self, segment: int, start: int, end: int) -> npt.NDArray[Any]:
        assert self.arena is not None
        view: npt.NDArray[Any] = self.arena.segment(segment).rows[start:end]
        return np.asarray(view)

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

    # -- the persisted folder ------------------------------------------------------------
    def attach(self, folder: VectorFolder, expect: dict[str, Any], max_change: int) -> int | None:
        """Hold pages in ``folder``: map its published pages and return their change
        number, or None when there are none to trust (missing, damaged, another
        store's): the cache is then empty and the caller fills it from SQL.

        The folder's writer appends new pages to it; another process reading the same
        folder keeps its own new pages in memory.
        """
        self.clear()
        writer = folder.try_lock()
        self.fallback = None if writer or folder.unusable is None else folder.unusable
        self.folder = folder
        self.arena = Arena(
            self.width,
            self.row_dtype,
            folder if writer else HeapSegments(),
            checksums=writer,
        )
        try:
            opened = folder.read(expect, self.width, self.row_dtype) if _exists(folder) else None
            change = -1 if opened is None else int(opened.header["change_no"])
            if change > max_change:
                raise IndexSnapshotError(
                    f"it is at change {change}, past what is wanted ({max_change})"
                )
        except IndexSnapshotError as exc:
            log.warning("latestore: vector file rejected (%s); rebuilding it from SQL", exc)
            opened = None
        if opened is None:
            if writer:
                # New segments never reuse a name a reader might still be about to map.
                self.arena.next_id = folder.next_segment_id()
                folder.reset()
                folder.remove_unreferenced(())
            return None
        for segment_id, segment in opened.segments.items():
            self.arena.adopt(segment_id, segment)
        if writer:
            folder.remove_unreferenced(opened.segments)  # a dead writer's leftovers
        # Read-only mappings: their views need no flag; one pass, no copies.
        segments = {i: s.rows for i, s in opened.segments.items()}
        in_segment = self._in_segment
        for page_id, segment_id, row, n in opened.pages.tolist():
            self._where[page_id] = (segment_id, row)
            in_segment.setdefault(segment_id, set()).add(page_id)
            self._hold(page_id, segments[segment_id][row : row + n])
        return change

    def detach(self) -> None:
        """Keep the pages held, but stop writing to (and holding the lock of) the folder:
        new pages go to memory from now on."""
        if self.folder is not None:
            self.folder.unlock()
            self.folder = None
            if self.arena is not None:
                self.arena.backing = HeapSegments()
                self.arena.checksums = False
                self.arena.seal()

    def publish(self, header: dict[str, Any]) -> int:
        """Write this cache's pages as the folder's new published state (writer only);
        returns the manifest's bytes, 0 when this process is not the writer."""
        folder = self.folder
        if folder is None or not folder.writer or self.arena is None:
            return 0
        # Compaction runs here, once per publish, so the pages of a batch of deletes are
        # not moved only to be deleted a moment later.
        current = self.arena.current
        if current >= 0 and 2 * self.arena.segment(current).live < self.arena.segment(current).used:
            self.arena.seal()
        for segment in self.arena.compactable():
            self._compact(segment)
        if self.folder is None:  # a compaction that did not fit let go of the folder
            return 0
        table = np.array(
            [(p, s, r, len(self._pages[p])) for p, (s, r) in self._where.items()], dtype=np.int64
        ).reshape(-1, 4)
        header = dict(header, width=self.width, dtype=self.row_dtype.str)
        written = folder.publish(header, table, self.arena.items())
        folder.remove_unreferenced(i for i, _ in self.arena.items())
        self.arena.dead.clear()
        return written

    def start_verifying(self) -> None:
        """Check the mapped segments' checksums in a background thread; pages of a
        segment that fails are listed in :attr:`damaged` for the owner to reload."""
        if self.arena is None or self.folder is None:
            return
        sealed = [(i, s) for i, s in self.arena.items() if not s.writable]
        if not sealed:
            return
        self._stop_verify.clear()
        self._verifier = threading.Thread(
            target=verify_segments,
            args=(sealed, self._mark_damaged, self._stop_verify),
            name="latestore-verify-vectors",
            daemon=True,
        )
        self._verifier.start()

    def wait_verified(self, timeout: float | None = None) -> None:
        if self._verifier is not None:
            self._verifier.join(timeout)

    def stop_verifying(self) -> None:
        self._stop_verify.set()
        if self._verifier is not None and self._verifier is not threading.current_thread():
            self._verifier.join()
        self._verifier = None

    def _mark_damaged(self, segment: int) -> None:
        with self._damage_lock:
            self.damaged.update(self._in_segment.get(segment, ()))

    def take_damaged(self) -> list[int]:
        with self._damage_lock:
            found, self.damaged = sorted(self.damaged), set()
        return found


def _exists(folder: VectorFolder) -> bool:
    return folder.manifest_path.exists()
