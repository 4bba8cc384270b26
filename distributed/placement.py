"""Which shard owns a page: jump consistent hashing of the page id.

Page ids are stable for a page's whole life (see DESIGN.md), so the owner is a pure
function of ``(page_id, n_shards)``: no assignment table to keep in SQL, and every
process (coordinator, shard, a restarted shard) agrees without asking anyone.

Jump consistent hash (Lamping and Veach, 2014) rather than ``page_id % n``: going from
``n`` to ``n + 1`` shards moves only the ``1 / (n + 1)`` of pages that the new shard
takes, and the old shards only drop pages. With ``page_id % n`` almost every page
would change shard (all but ``1 / (n + 1)``), and each shard would reload most of its
vectors from SQL.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

_MULTIPLIER = np.uint64(2862933555777941757)
_TWO_31 = float(1 << 31)


def shard_of(page_ids: npt.ArrayLike, n_shards: int) -> npt.NDArray[np.int64]:
    """The owning shard (``0 .. n_shards - 1``) of each page id.

    Examples
    --------
    >>> shard_of([1, 2, 3], 1).tolist()
    [0, 0, 0]
    >>> bool((shard_of(range(1, 1000), 4) < 4).all())
    True
    """
    if n_shards < 1:
        raise ValueError(f"n_shards must be at least 1, got {n_shards}")
    keys = np.asarray(page_ids, dtype=np.int64).astype(np.uint64)
    bucket = np.zeros(keys.shape, dtype=np.int64)
    jump = np.zeros(keys.shape, dtype=np.int64)
    active = jump < n_shards
    with np.errstate(over="ignore"):
        while active.any():
            bucket = np.where(active, jump, bucket)
            keys = np.where(active, keys * _MULTIPLIER + np.uint64(1), keys)
            step = _TWO_31 / ((keys >> np.uint64(33)).astype(np.float64) + 1.0)
            jump = np.where(active, ((bucket + 1) * step).astype(np.int64), jump)
            active = jump < n_shards
    return bucket


def split_by_shard(
    page_ids: Iterable[int] | npt.NDArray[np.int64], n_shards: int
) -> list[npt.NDArray[np.int64]]:
    """``page_ids`` partitioned by owner, each part in the order given."""
    ids = (
        np.fromiter(page_ids, dtype=np.int64) if not isinstance(page_ids, np.ndarray) else page_ids
    )
    owners = shard_of(ids, n_shards)
    return [ids[owners == shard] for shard in range(n_shards)]


def moved_fraction(page_ids: npt.ArrayLike, old: int, new: int) -> float:
    """Share of ``page_ids`` whose owner changes between ``old`` and ``new`` shards."""
    ids = np.asarray(page_ids, dtype=np.int64)
    if len(ids) == 0:
        return 0.0
    return float(np.mean(shard_of(ids, old) != shard_of(ids, new)))
