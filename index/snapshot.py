"""Verified on-disk snapshots of derived index state.

A snapshot is ``MAGIC | header length | JSON header | payload``. The header records the
format version, the store it belongs to, the last change number it contains and a
checksum of the payload; nothing is deserialised before all of that checks out. Files
are written to a temporary name, fsynced and renamed, so a crash leaves the old snapshot
or the new one, never a mix.

Format 2 checksums the payload with xxh3-128 (about 5 GB/s here, against sha256's 0.4:
a 16M-token index's 400 MB snapshot is verified in 0.1 s instead of 1 s at every open);
it guards against damage, not against someone forging a file, which a local index file
cannot be protected from anyway. Format 1 (sha256) files are still read.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xxhash

from latestore.errors import IndexSnapshotError

MAGIC = b"LATESTORE-SNAPSHOT\n"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

Buffer = bytes | memoryview


@dataclass(frozen=True)
class Snapshot:
    header: dict[str, Any]
    sections: dict[str, Buffer]  # views into the file's bytes: no copy of the payload


class StreamedSection:
    """A section produced by a function that writes it in chunks (FAISS's serializer),
    so the payload is never held in memory whole. It is streamed twice: once to size
    and checksum it for the header, once into the file, where it must hash the same."""

    def __init__(self, stream: Callable[[Callable[[Buffer], None]], None]) -> None:
        self.stream = stream
        self.size = -1
        self.xxh3 = ""

    def measure(self, payload: Any) -> int:
        """First pass: feed ``payload`` (the snapshot's running digest); returns the size."""
        own = xxhash.xxh3_128()
        size = 0

        def take(chunk: Buffer) -> None:
            nonlocal size
            payload.update(chunk)
            own.update(chunk)
            size += len(chunk)

        self.stream(take)
        self.size, self.xxh3 = size, own.hexdigest()
        return size

    def write_to(self, write: Callable[[Buffer], Any]) -> None:
        """Second pass, into the file; raises if it differs from the first."""
        own = xxhash.xxh3_128()
        size = 0

        def put(chunk: Buffer) -> None:
            nonlocal size
            own.update(chunk)
            size += len(chunk)
            write(chunk)

        self.stream(put)
        if (size, own.hexdigest()) != (self.size, self.xxh3):
            raise IndexSnapshotError("a streamed section changed between its two passes")


Section = Buffer | StreamedSection


def write_snapshot(path: Path, header: dict[str, Any], sections: Mapping[str, Section]) -> int:
    """Atomically write ``sections`` with ``header``; returns the bytes written."""
    names = list(sections)
    digest = xxhash.xxh3_128()
    sizes: dict[str, int] = {}
    for name in names:  # hashed section by section: the payload is never joined in memory
        section = sections[name]
        if isinstance(section, StreamedSection):
            sizes[name] = section.measure(digest)
        else:
            digest.update(section)
            sizes[name] = len(section)
    full_header = dict(header)
    full_header.update(
        format_version=FORMAT_VERSION,
        sections=[[n, sizes[n]] for n in names],
        payload_xxh3_128=digest.hexdigest(),
    )
    head = json.dumps(full_header, sort_keys=True).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [MAGIC, struct.pack("<Q", len(head)), head, *(sections[n] for n in names)]
    write_atomically(path, parts)
    return len(MAGIC) + 8 + len(head) + sum(sizes.values())


def write_atomically(path: Path, parts: Iterable[Section]) -> None:
    """Write ``parts`` one after another to ``path``, all or nothing: a temporary file
    beside it, fsynced, then renamed over it (and the directory fsynced)."""
    remove_orphaned_temporaries(path)
    # pid first (for orphan clean-up), then a random part: two stores of one process
    # may snapshot the same directory at once and must not share a temporary file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("wb") as handle:
            for part in parts:
                if isinstance(part, StreamedSection):
                    part.write_to(handle.write)
                else:
                    handle.write(part)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def read_snapshot(path: Path, expect: dict[str, Any]) -> Snapshot:
    """Read and verify a snapshot; raise IndexSnapshotError on any mismatch.

    ``expect`` holds header fields that must match exactly (store uuid, dim, ...).
    """
    try:
        blob = _map(path)
    except (OSError, ValueError) as exc:
        raise IndexSnapshotError(f"cannot read snapshot {path}: {exc}") from exc
    if bytes(blob[: len(MAGIC)]) != MAGIC or len(blob) < len(MAGIC) + 8:
        raise IndexSnapshotError(f"{path} is not a latestore snapshot")
    (head_len,) = struct.unpack_from("<Q", blob, len(MAGIC))
    start = len(MAGIC) + 8
    if head_len > len(blob) - start:
        raise IndexSnapshotError(f"{path} is truncated")
    try:
        header = json.loads(bytes(blob[start : start + head_len]))
    except ValueError as exc:
        raise IndexSnapshotError(f"{path} has a corrupt header") from exc
    if not isinstance(header, dict) or header.get("format_version") not in READABLE_VERSIONS:
        raise IndexSnapshotError(f"{path} has an unsupported format")
    for key, value in expect.items():
        if header.get(key) != value:
            raise IndexSnapshotError(f"{path} was written for {key}={header.get(key)!r}")
    payload = memoryview(blob)[start + head_len :]
    if header["format_version"] == 1:
        good = hashlib.sha256(payload).hexdigest() == header.get("payload_sha256")
    else:
        good = xxhash.xxh3_128(payload).hexdigest() == header.get("payload_xxh3_128")
    if not good:
        raise IndexSnapshotError(f"{path} failed its checksum")
    sections: dict[str, Buffer] = {}
    offset = 0
    for name, size in header["sections"]:
        sections[name] = payload[offset : offset + size]
        offset += size
    if offset != len(payload):
        raise IndexSnapshotError(f"{path} has a malformed payload")
    return Snapshot(header=header, sections=sections)


def _map(path: Path) -> memoryview:
    """The file's bytes, mapped read-only: sections are views of the page cache, so a
    400 MB index is neither read into a bytes object nor copied out of one."""
    with path.open("rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return memoryview(b"")
        return memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))


def deserialize_faiss(section: Buffer) -> Any:
    """A FAISS index read straight from a snapshot section (one copy, into FAISS's own
    structures; faiss.deserialize_index would first copy it into a zeroed vector)."""
    import faiss

    view = memoryview(section)
    offset = 0

    def read(n: int) -> bytes:
        nonlocal offset
        chunk = bytes(view[offset : offset + n])
        offset += len(chunk)
        return chunk

    reader = faiss.PyCallbackIOReader(read, 1 << 24)  # type: ignore[attr-defined]
    return faiss.read_index(reader)


def remove_orphaned_temporaries(path: Path) -> int:
    """Delete temporary files of ``path`` left by writers that died mid-snapshot.

    A temporary file names its writer's pid; one whose process is gone can never be
    renamed into place, and without this every crash would leave a full-size copy
    behind. Files of live processes (another store writing now) are left alone.
    """
    removed = 0
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid_text = tmp.name[len(path.name) + 2 :].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _alive(int(pid_text)):
            continue
        try:
            tmp.unlink()
            removed += 1
        except FileNotFoundError:  # another process cleaned it up first
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
