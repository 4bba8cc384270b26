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
