"""Page vectors in mapped scratch files: same values, segments freed, nothing left on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latestore.index.arena import DiskArena
from latestore.index.vectors import VectorCache


def rows(rng: np.random.Generator, n: int, dim: int = 8) -> np.ndarray:
    return rng.standard_normal((n, dim)).astype(np.float16)


def test_rows_come_back_unchanged_and_read_only(tmp_path: Path, rng: np.random.Generator) -> None:
    arena = DiskArena(8, np.float16, tmp_path, segment_bytes=1024)  # 64 rows per segment
    pages = [rows(rng, n) for n in (10, 30, 40, 200, 1)]
    views = [arena.store(p) for p in pages]
    for page, (view, _) in zip(pages, views, strict=True):
        np.testing.assert_array_equal(view, page)
        assert not view.flags.writeable
    segments = [s for _, s in views]
    assert segments[0] == segments[1]  # 10 + 30 rows share a segment
    assert segments[2] != segments[1]  # 40 more would not fit: a new one
    assert segments[3] not in segments[:3]  # 200 rows > a segment: one of its own
    assert list(tmp_path.iterdir()) == []  # unlinked scratch files: nothing to clean up


def test_a_dead_segment_is_unmapped_but_held_views_stay_valid(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    arena = DiskArena(8, np.float16, tmp_path, segment_bytes=1024)
    first = rows(rng, 50)
    view, segment = arena.store(first)
    arena.store(rows(rng, 50))  # moves on to a second segment
    mapped = arena.mapped_bytes
    arena.release(segment, 50)
    assert arena.segments == 1 and arena.mapped_bytes < mapped
    np.testing.assert_array_equal(view, first)  # the view kept its mapping alive


def test_the_current_segment_survives_emptying(tmp_path: Path, rng: np.random.Generator) -> None:
    arena = DiskArena(8, np.float16, tmp_path, segment_bytes=1024)
    _, segment = arena.store(rows(rng, 5))
    arena.release(segment, 5)
    assert arena.segments == 1
    _, again = arena.store(rows(rng, 5))
    assert again == segment


@pytest.mark.parametrize("dtype", ["float16", "float32", "int8"])
def test_disk_cache_matches_memory_cache(
    tmp_path: Path, rng: np.random.Generator, dtype: str
) -> None:
    memory = VectorCache(8, dtype)
    disk = VectorCache(8, dtype, on_disk=True, directory=tmp_path)
    pages = {
        i: rng.standard_normal((int(rng.integers(1, 90)), 8)).astype(np.float32) for i in range(40)
    }
    for cache in (memory, disk):
        for page_id, v in pages.items():
            cache.put(page_id, v)
        for page_id in range(0, 40, 3):
            cache.discard(page_id)
        cache.put(7, pages[8])  # replace in place
    assert disk.arena is not None and memory.arena is None
    assert disk.total_tokens == memory.total_tokens
    ids = [int(p) for p in memory.page_ids()]
    assert sorted(ids) == sorted(int(p) for p in disk.page_ids())
    for page_id in ids:
        np.testing.assert_array_equal(disk.get(page_id), memory.get(page_id))
    got, lengths = disk.gather(ids[:10])
    want, want_lengths = memory.gather(ids[:10])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(lengths, want_lengths)
    disk.clear()
    assert disk.total_tokens == 0 and len(disk) == 0
    assert disk.arena is not None and disk.arena.segments == 0
