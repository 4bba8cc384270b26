"""Scale-out on Ray: sharded exact search and distributed ingestion over one SQL store.

>>> from latestore.distributed import ShardedIndex, ShardedStore  # doctest: +SKIP

Ray is an optional dependency (``pip install 'latestore[ray]'``); importing this
package does not import it, the names below do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if __name__ != "latestore.distributed":
    raise ImportError(f"import latestore.distributed, not {__name__!r}: see pyproject package-dir")

from latestore.distributed.placement import shard_of, split_by_shard
from latestore.errors import ShardUnavailableError

if TYPE_CHECKING:
    from latestore.distributed.coordinator import ShardedStore
    from latestore.distributed.ingest import ray_ingest_paths
    from latestore.distributed.sharded_index import ShardedIndex

__all__ = [
    "ShardUnavailableError",
    "ShardedIndex",
    "ShardedStore",
    "ray_ingest_paths",
    "shard_of",
    "split_by_shard",
]


def __getattr__(name: str) -> Any:
    if name == "ShardedStore":
        from latestore.distributed.coordinator import ShardedStore

        return ShardedStore
    if name == "ShardedIndex":
        from latestore.distributed.sharded_index import ShardedIndex

        return ShardedIndex
    if name == "ray_ingest_paths":
        from latestore.distributed.ingest import ray_ingest_paths

        return ray_ingest_paths
    raise AttributeError(f"module 'latestore.distributed' has no attribute {name!r}")
