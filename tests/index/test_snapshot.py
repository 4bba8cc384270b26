"""Snapshots are verified before anything in them is deserialised."""

from __future__ import annotations

from pathlib import Path

import pytest

from latestore.errors import IndexSnapshotError
from latestore.index.snapshot import read_snapshot, write_snapshot


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.snapshot"
    write_snapshot(path, {"store_uuid": "u", "change_no": 3}, {"a": b"hello", "b": b"\x00" * 10})
    snap = read_snapshot(path, {"store_uuid": "u"})
    assert snap.sections == {"a": b"hello", "b": b"\x00" * 10}
    assert snap.header["change_no"] == 3
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "other-store", "empty"])
def test_damaged_snapshot_is_rejected(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "s.snapshot"
    write_snapshot(path, {"store_uuid": "u"}, {"a": b"x" * 1000})
    blob = bytearray(path.read_bytes())
    expect = {"store_uuid": "u"}
    if damage == "truncate":
        path.write_bytes(bytes(blob[:-10]))
    elif damage == "flip":
        blob[-100] ^= 0x01
        path.write_bytes(bytes(blob))
    elif damage == "garbage":
        path.write_bytes(b"\x80\x04pickle-looking bytes")
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        expect = {"store_uuid": "someone-else"}
    with pytest.raises(IndexSnapshotError):
        read_snapshot(path, expect)


def test_a_format_1_snapshot_is_still_read(tmp_path: Path) -> None:
    """Format 1 checksummed the payload with sha256; stores written before still open."""
    import hashlib
    import json
    import struct

    from latestore.index.snapshot import MAGIC

    payload = b"hello" + b"\x00" * 10
    header = {
        "store_uuid": "u",
        "format_version": 1,
        "sections": [["a", 5], ["b", 10]],
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    head = json.dumps(header).encode()
    path = tmp_path / "old.snapshot"
    path.write_bytes(MAGIC + struct.pack("<Q", len(head)) + head + payload)
    snap = read_snapshot(path, {"store_uuid": "u"})
    assert snap.sections == {"a": b"hello", "b": b"\x00" * 10}
    path.write_bytes(MAGIC + struct.pack("<Q", len(head)) + head + b"jello" + b"\x00" * 10)
    with pytest.raises(IndexSnapshotError, match="checksum"):
        read_snapshot(path, {"store_uuid": "u"})


def test_a_streamed_faiss_section_matches_the_serialized_index(tmp_path: Path) -> None:
    """The FAISS index is written in chunks (never held whole as bytes); the section
    read back is byte for byte FAISS's own serialization, and it opens viewed."""
    import numpy as np

    from latestore.index.token_index import IndexParams, TokenIndex

    rng = np.random.default_rng(3)
    tokens = TokenIndex(16, IndexParams(ivf_nlist=8))
    vectors = [rng.standard_normal((40, 16)).astype(np.float32) for _ in range(30)]
    tokens.train_ivf(np.concatenate(vectors), 1200)
    tokens.add(list(range(30)), vectors)
    path = tmp_path / "s.snapshot"
    written = write_snapshot(path, {"store_uuid": "u"}, {"faiss": tokens.streamed(), "b": b"x"})
    snap = read_snapshot(path, {"store_uuid": "u"})
    assert bytes(snap.sections["faiss"]) == bytes(tokens.to_bytes())
    assert snap.sections["b"] == b"x" and written == path.stat().st_size
    viewed = TokenIndex.viewing(16, IndexParams(ivf_nlist=8), snap.sections["faiss"])
    query = vectors[4][:3]
    got, want = viewed.search(query, 5, nprobe=8), tokens.search(query, 5, nprobe=8)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_streamed_section_that_changes_between_passes_is_not_published(
    tmp_path: Path,
) -> None:
    from latestore.index.snapshot import StreamedSection

    passes = iter([b"first", b"other"])

    def stream(sink: object) -> None:
        sink(next(passes))  # type: ignore[operator]

    path = tmp_path / "s.snapshot"
    with pytest.raises(IndexSnapshotError):
        write_snapshot(path, {"store_uuid": "u"}, {"a": StreamedSection(stream)})
    assert not path.exists() and not list(tmp_path.glob(".*.tmp"))
