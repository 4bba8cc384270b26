"""ShardedStore: a Store whose derived index lives on shard actors (a ShardedIndex).

Nothing of the Store is overridden: writes go to SQL as a single store's do, and
searches (every mode, filters, phrases, ``exhaustive``) take the Store's own path, with
the ranking step answered by the shards (:mod:`latestore.distributed.sharded_index`).
This class only spells the opening (``shards=...``) and lends the layout calls of its
:class:`ShardedIndex`. ``Store.open(url, index=ShardedIndex(...))`` opens the same
store as a plain ``Store``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from latestore.distributed.sharded_index import DEFAULT_TIMEOUT_S, ShardedIndex
from latestore.encoders import Encoder
from latestore.errors import InvalidInputError
from latestore.models import StoreConfig
from latestore.store import Store

__all__ = ["DEFAULT_TIMEOUT_S", "ShardedStore"]


class ShardedStore(Store):
    """A Store whose index is split across ``shards`` Ray actors.

    Examples
    --------
    >>> import ray
    >>> from latestore.distributed import ShardedStore
    >>> ray.init()                                                   # doctest: +SKIP
    >>> url = "postgresql+psycopg://me@db/pages"
    >>> gpu_each = {"num_gpus": 1}
    >>> with ShardedStore.open(url, shards=4, actor_options=gpu_each) as store:  # doctest: +SKIP
    ...     hits = store.search("how does ColBERT score?", k=10, mode="hybrid")
    """

    _shards: ShardedIndex  # set by open()

    @classmethod
    def open(
        cls,
        target: str | Path,
        encoder: Encoder | str | Path | None = None,
        *,
        config: StoreConfig | None = None,
        index_dir: str | Path | None = None,
        encoder_options: Mapping[str, Any] | None = None,
        load_index: bool = True,
        index: Any = None,
        shards: int = 2,
        snapshot_dir: str | Path | None = None,
        actor_options: Mapping[str, Any] | None = None,
        max_restarts: int = 3,
        retries: int = 2,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> ShardedStore:
        """Open the store at ``target`` (created if needed) and start ``shards`` actors
        (see :class:`ShardedIndex` for the other options).

        ``index`` may be a ShardedIndex built beforehand, in place of the options;
        ``index_dir`` is unused (the coordinator holds no vectors; shards snapshot to
        ``snapshot_dir``).
        """
        if index is None:
            index = ShardedIndex(
                shards,
                snapshot_dir=snapshot_dir,
                actor_options=actor_options,
                max_restarts=max_restarts,
                retries=retries,
                timeout_s=timeout_s,
            )
        elif not isinstance(index, ShardedIndex):
            raise InvalidInputError(
                f"a ShardedStore's index is a ShardedIndex, got {type(index).__name__}"
            )
        store = super().open(
            target,
            encoder,
            config=config,
            index_dir=None,
            encoder_options=encoder_options,
            load_index=load_index,
            index=index,
        )
        assert isinstance(store, ShardedStore)
        store._shards = index
        return store

    @property
    def shards(self) -> ShardedIndex:
        """The sharded index: its actors, layout and fault settings."""
        return self._shards

    @property
    def n_shards(self) -> int:
        return self._shards.n_shards

    @property
    def retries(self) -> int:
        return self._shards.calls.retries

    @property
    def timeout_s(self) -> float:
        return self._shards.calls.timeout_s

    def resize(self, shards: int) -> dict[str, int]:
        """Change the number of shards (:meth:`ShardedIndex.resize`)."""
        self._db.check_open()
        self.opened_from  # noqa: B018 - starts the shards if open() deferred them
        return self._shards.resize(shards)

    def shard_pids(self) -> list[int]:
        """Process ids of the shard actors (tests kill one to exercise restarts)."""
        self._db.check_open()
        self.opened_from  # noqa: B018 - starts the shards if open() deferred them
        return self._shards.shard_pids()
