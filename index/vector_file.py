"""The persisted rank-vector folder: segment files of packed pages and a verified manifest.

Layout (see docs/vector-file.md)::

    <index dir>/vectors/
        manifest                 MAGIC | u64 header length | u64 header xxh3 | JSON header
                                 | page table
        segment-00000007.bin     rows appended page after page, never rewritten
        writer.lock              flock: the one process that may append and publish

The manifest names the store, dim, row dtype, the change number the pages reflect,
each segment's used rows with xxh3 checksums of its row ranges, and an ``(n, 4)`` int64
page table ``(page_id, segment, row, n_tokens)`` whose own checksum is in the header.

Publishing is crash safe by construction: rows are only ever appended past what a
published manifest references, the segments are flushed before the new manifest is
written to a temporary name, fsynced and renamed over the old one, and segment files
are deleted only after a manifest that no longer names them is in place. A kill at any
point leaves the old manifest (with rows it references unchanged) or the new one.

Opening verifies the header, the page table's checksum, each segment file's size and
the table's bounds: O(pages + segments), never O(tokens). The rows' checksums are
checked by :func:`verify_segments`, run after open in a background thread (see
docs/vector-file.md for the trade-off).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import xxhash

from latestore.errors import IndexSnapshotError
from latestore.index.arena import Segment, reserve
from latestore.index.snapshot import write_atomically

log = logging.getLogger("latestore")

MAGIC = b"LATESTORE-VECTORS\n"
FORMAT_VERSION = 1
MANIFEST = "manifest"
LOCK = "writer.lock"
PAGE_COLUMNS = 4  # page_id, segment, row, n_tokens
VERIFY_STEP_BYTES = 1 << 20
HEAD_START = len(MAGIC) + 16  # then u64 header length, u64 xxh3_64 of the header


def segment_name(segment_id: int) -> str:
    return f"segment-{segment_id:08d}.bin"


def row_checksum(rows: npt.NDArray[Any]) -> int:
    digest: int = xxhash.xxh3_64(np.ascontiguousarray(rows).data).intdigest()
    return digest


@dataclass(frozen=True)
class Opened:
    header: dict[str, Any]
    pages: npt.NDArray[np.int64]  # (n, PAGE_COLUMNS)
    segments: dict[int, Segment]


class VectorFolder:
    """One store's persisted vector folder; also the arena backing of its writer."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock_fd: int | None = None
        self.unusable: str | None = None  # why this process cannot write the folder

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST

    @property
    def writer(self) -> bool:
        return self._lock_fd is not None

    def try_lock(self) -> bool:
        """Become the folder's writer unless another store (any process) is."""
        if self._lock_fd is not None:
            return True
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            self.unusable = (
                f"cannot write {self.directory} ({exc.strerror or exc}); new pages held in memory"
            )
            log.warning("latestore: vector folder %s unusable (%s)", self.directory, exc)
            return False
        try:
            # flock, not fcntl locks: two stores of one process must exclude each other.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    # -- arena backing (writer only) -------------------------------------------------
    def create(self, segment_id: int, n_rows: int, width: int, dtype: np.dtype[Any]) -> Any:
        assert self.writer, "only the folder's writer creates segments"
        path = self.directory / segment_name(segment_id)
        # A file of this name can only be a dead writer's unpublished segment.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            reserve(fd, n_rows * width * dtype.itemsize)
            with os.fdopen(os.dup(fd), "r+b") as handle:
                return np.memmap(handle, dtype=dtype, mode="r+", shape=(n_rows, width))
        except OSError:
            # A full disk: leave no empty (or partly reserved) segment file behind.
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        finally:
            os.close(fd)

    # -- reading -----------------------------------------------------------------
    def read(self, expect: dict[str, Any], width: int, dtype: np.dtype[Any]) -> Opened:
        """The published manifest and its segments mapped read-only; IndexSnapshotError
        when anything does not check out (the caller then rebuilds from SQL)."""
        path = self.manifest_path
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise IndexSnapshotError(f"cannot read {path}: {exc}") from exc
        header = _parse_header(path, blob)
        for key, value in dict(expect, width=width, dtype=dtype.str).items():
            if header.get(key) != value:
                raise IndexSnapshotError(f"{path} was written for {key}={header.get(key)!r}")
        start = HEAD_START + int(header["_head_len"])
        table = memoryview(blob)[start:]
        if xxhash.xxh3_128(table).hexdigest() != header.get("table_xxh3_128"):
            raise IndexSnapshotError(f"{path} failed its checksum")
        if len(table) % (8 * PAGE_COLUMNS):
            raise IndexSnapshotError(f"{path} has a malformed page table")
        pages = np.frombuffer(table, dtype="<i8").reshape(-1, PAGE_COLUMNS)
        segments = {
            int(i): self._map(
                int(i), int(used), [(int(e), int(d)) for e, d in extents], width, dtype
            )
            for i, used, extents in header["segments"]
        }
        _check_table(path, pages, segments)
        return Opened(header, pages, segments)

    def _map(
        self,
        segment_id: int,
        used: int,
        extents: list[tuple[int, int]],
        width: int,
        dtype: np.dtype[Any],
    ) -> Segment:
        path = self.directory / segment_name(segment_id)
        row_bytes = width * dtype.itemsize
        ends = [e for e, _ in extents]
        if used < 1 or ends != sorted(ends) or not ends or ends[-1] != used or ends[0] < 1:
            raise IndexSnapshotError(f"{path}: bad segment record")
        try:
            size = path.stat().st_size
            if size < used * row_bytes:
                raise IndexSnapshotError(f"{path} is truncated ({size} bytes)")
            mapped = np.memmap(path, dtype=dtype, mode="r", shape=(used, width))
        except OSError as exc:
            raise IndexSnapshotError(f"cannot map {path}: {exc}") from exc
        # A plain (read-only) ndarray over the mapping: slicing a memmap goes through its
        # Python __getitem__, 40 us a page; this is what makes 53k pages map in 0.1 s.
        return Segment(np.asarray(mapped), used=used, live=0, writable=False, extents=extents)

    # -- publishing (writer only) ----------------------------------------------------
    def publish(
        self,
        header: dict[str, Any],
        pages: npt.NDArray[np.int64],
        segments: Iterable[tuple[int, Segment]],
    ) -> int:
        """Flush the segments, then atomically replace the manifest; returns its bytes."""
        assert self.writer, "only the folder's writer publishes"
        records = []
        for segment_id, segment in segments:
            if segment.writable:
                flush = getattr(segment.rows, "flush", None)
                if flush is not None:
                    flush()  # msync: the rows reach the disk before the manifest names them
                last = segment.extents[-1][0] if segment.extents else 0
                if segment.used > last and segment.pending is not None:
                    segment.extents.append((segment.used, segment.pending.intdigest()))
                    segment.pending.reset()
            if segment.used:
                records.append([segment_id, segment.used, [list(e) for e in segment.extents]])
        table = np.ascontiguousarray(pages, dtype="<i8").tobytes()
        full = dict(
            header,
            format_version=FORMAT_VERSION,
            segments=records,
            n_pages=len(pages),
            table_xxh3_128=xxhash.xxh3_128(table).hexdigest(),
        )
        head = json.dumps(full, sort_keys=True).encode()
        prefix = struct.pack("<QQ", len(head), xxhash.xxh3_64(head).intdigest())
        write_atomically(self.manifest_path, [MAGIC + prefix + head + table])
        return HEAD_START + len(head) + len(table)

    def remove_unreferenced(self, keep: Iterable[int]) -> int:
        """Delete segment files no published manifest names (writer only)."""
        assert self.writer
        wanted = {segment_name(i) for i in keep}
        removed = 0
        for path in self.directory.glob("segment-*.bin"):
            if path.name not in wanted:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        return removed

    def trim(self, segments: Iterable[tuple[int, Segment]], row_bytes: int) -> None:
        """Give back the reserved space past the used rows of the segments this writer
        appended to (at close: the next writer starts a new segment)."""
        for segment_id, segment in segments:
            if segment.writable and segment.used:
                with contextlib.suppress(OSError):
                    os.truncate(self.directory / segment_name(segment_id), segment.used * row_bytes)

    def next_segment_id(self) -> int:
        """One past the highest segment id on disk."""
        ids = [
            int(p.name[8:16])
            for p in self.directory.glob("segment-*.bin")
            if p.name[8:16].isdigit()
        ]
        return max(ids, default=-1) + 1

    def reset(self) -> None:
        """Forget the published state (the caller rebuilds from SQL and republishes)."""
        assert self.writer
        with contextlib.suppress(FileNotFoundError):
            self.manifest_path.unlink()


def verify_segment(segment: Segment) -> bool:
    """Do the segment's published rows match their recorded checksums?"""
    start = 0
    rows_per_step = max(1, VERIFY_STEP_BYTES // max(1, segment.rows[:1].nbytes))
    for end, digest in segment.extents:
        hasher = xxhash.xxh3_64()
        for first in range(start, end, rows_per_step):
            # Small steps: searches running meanwhile get the GIL (and the disk) back often.
            part = segment.rows[first : min(end, first + rows_per_step)]
            hasher.update(np.ascontiguousarray(part).data)
            time.sleep(0)
        if hasher.intdigest() != digest:
            return False
        start = end
    return True


def verify_segments(
    segments: list[tuple[int, Segment]],
    on_damage: Callable[[int], None],
    stop: threading.Event,
) -> None:
    """Check each segment's rows against its checksums; ``on_damage(segment_id)`` on a
    mismatch. Runs in a background thread at the lowest CPU priority."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    for segment_id, segment in segments:
        if stop.is_set():
            return
        try:
            good = verify_segment(segment)
        except (OSError, ValueError):
            good = False
        if not good:
            log.warning("latestore: vector segment %d failed its checksum", segment_id)
            on_damage(segment_id)


def _parse_header(path: Path, blob: bytes) -> dict[str, Any]:
    if not blob.startswith(MAGIC) or len(blob) < HEAD_START:
        raise IndexSnapshotError(f"{path} is not a latestore vector manifest")
    head_len, head_digest = struct.unpack_from("<QQ", blob, len(MAGIC))
    if head_len > len(blob) - HEAD_START:
        raise IndexSnapshotError(f"{path} is truncated")
    head = blob[HEAD_START : HEAD_START + head_len]
    if xxhash.xxh3_64(head).intdigest() != head_digest:
        raise IndexSnapshotError(f"{path} failed its header checksum")
    try:
        header = json.loads(head)
    except ValueError as exc:
        raise IndexSnapshotError(f"{path} has a corrupt header") from exc
    if not isinstance(header, dict) or header.get("format_version") != FORMAT_VERSION:
        raise IndexSnapshotError(f"{path} has an unsupported format")
    header["_head_len"] = head_len
    return header


def _check_table(path: Path, pages: npt.NDArray[np.int64], segments: dict[int, Segment]) -> None:
    """Every page lies inside a published segment, and no two pages overlap."""
    if not len(pages):
        return
    ids, seg, row, n = pages.T
    if len(np.unique(ids)) != len(ids) or (n < 1).any() or (row < 0).any():
        raise IndexSnapshotError(f"{path} has a malformed page table")
    known = np.fromiter(segments, dtype=np.int64, count=len(segments))
    used = np.array([segments[int(i)].used for i in known], dtype=np.int64)
    where = np.searchsorted(np.sort(known), seg)
    order_known = np.argsort(known)
    inside = (where < len(known)) & (np.sort(known)[np.minimum(where, len(known) - 1)] == seg)
    if not inside.all():
        raise IndexSnapshotError(f"{path} names a segment it does not list")
    if (row + n > used[order_known][where]).any():
        raise IndexSnapshotError(f"{path} has pages past their segment's end")
    order = np.lexsort((row, seg))
    s, r, m = seg[order], row[order], n[order]
    same = s[1:] == s[:-1]
    if (same & (r[:-1] + m[:-1] > r[1:])).any():
        raise IndexSnapshotError(f"{path} has overlapping pages")
    lives = np.bincount(np.searchsorted(np.sort(known), seg), weights=n, minlength=len(known))
    for position, segment_id in enumerate(np.sort(known).tolist()):
        segments[segment_id].live = int(lives[position])
