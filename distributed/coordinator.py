"""ShardedStore: the Store API over shard actors on a Ray cluster, one PostgreSQL store.

* **Writes** go to SQL exactly as a single Store's do (this class *is* a Store whose
  derived index is empty); any process may write.
* **Searches** read SQL's change number once, then fan out to every shard with it:
  a shard behind that change catches up from the change log before ranking. So a
  search sees every write committed before it started, by this client or any other.
* **Filters** are evaluated once, in SQL, here; each shard gets the allowed ids it
  owns (a shard with none is not asked).
* **Merging** takes each shard's exact top ``k`` and keeps the best ``k`` overall,
  ties by smaller page id: the single store's order.
* **Faults**: a shard that dies is restarted by Ray (``max_restarts``) and reloads; a
  search retries it ``retries`` times within ``timeout_s``, then raises
  :class:`~latestore.errors.ShardUnavailableError`. A result is never partial.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import ray
from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError
from sqlalchemy.orm import Session

from latestore import HybridOptions, SearchTuning
from latestore.distributed.coordinator_sync import CoordinatorSync
from latestore.distributed.placement import shard_of, split_by_shard
from latestore.distributed.shard import SearchReply, ShardServer
from latestore.encoders import Encoder
from latestore.errors import InvalidInputError, ShardUnavailableError
from latestore.internal import (
    Query,
    Ranking,
    ReadWriteLock,
    hydrate,
    matching_page_ids,
    query_vectors,
    search_request,
)
from latestore.models import SearchHit, StoreConfig
from latestore.store import Store

DEFAULT_TIMEOUT_S = 120.0
DIED_CONFIRMATIONS = 3


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
    ...     hits = store.search("how does ColBERT score?", k=10)
    """

    sync_class = CoordinatorSync

    # Set by open(); a ShardedStore is only made through it.
    _actors: list[Any]
    _url: str
    _actor_options: dict[str, Any]
    _snapshot_dir: str | None
    _layout_lock: ReadWriteLock
    retries: int
    timeout_s: float

    @classmethod
    def open(  # type: ignore[override]
        cls,
        target: str | Path,
        encoder: Encoder | str | Path | None = None,
        *,
        shards: int = 2,
        config: StoreConfig | None = None,
        encoder_options: Mapping[str, Any] | None = None,
        snapshot_dir: str | Path | None = None,
        actor_options: Mapping[str, Any] | None = None,
        max_restarts: int = 3,
        retries: int = 2,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> ShardedStore:
        """Open the store at ``target`` (created if needed) and start ``shards`` actors.

        Ray must be initialised (``ray.init``), or it is started locally. Shards
        reload from ``snapshot_dir`` (a folder per shard; it must be reachable from
        the node the shard runs on) or, without one, from SQL. ``actor_options`` go
        to each actor (``num_gpus=1`` puts each shard on a GPU of its own).
        """
        if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
            raise InvalidInputError(f"shards must be a positive integer, got {shards!r}")
        if retries < 0 or timeout_s <= 0:
            raise InvalidInputError("retries must be >= 0 and timeout_s > 0")
        store = super().open(
            target, encoder, config=config, index_dir=None, encoder_options=encoder_options
        )
        assert isinstance(store, ShardedStore)
        store._url = str(store._engine.url.render_as_string(hide_password=False))
        store._actors = []
        store._snapshot_dir = None if snapshot_dir is None else str(snapshot_dir)
        store._actor_options = {
            "max_restarts": max_restarts,
            "max_task_retries": 0,  # retried here, so a search knows it is complete
            "max_concurrency": 4,  # searches share a shard's index under its read lock
            **dict(actor_options or {}),
        }
        store._layout_lock = ReadWriteLock()
        store.retries = retries
        store.timeout_s = timeout_s
        try:
            store._start(range(shards), shards)
        except BaseException:
            store.close()
            raise
        return store

    @property
    def n_shards(self) -> int:
        return len(self._actors)

    def _start(self, shard_numbers: range, n_shards: int) -> None:
        """Start the shard actors and wait until each has loaded its slice."""
        if not ray.is_initialized():
            ray.init()
        remote: Any = ray.remote(ShardServer).options(**self._actor_options)
        config = self.config
        started = [
            remote.remote(self._url, i, n_shards, config, self._snapshot_dir) for i in shard_numbers
        ]
        self._actors += started
        ray.get([a.ready.remote() for a in started], timeout=self.timeout_s * 10)

    def close(self) -> None:
        actors, self._actors = getattr(self, "_actors", []), []
        if actors:
            # A snapshot only shortens the next load: closing goes on without one.
            with contextlib.suppress(RayActorError, GetTimeoutError):
                ray.get([a.save.remote() for a in actors], timeout=self.timeout_s)
            for actor in actors:
                ray.kill(actor)
        super().close()

    # -- layout ----------------------------------------------------------------
    def resize(self, shards: int) -> dict[str, int]:
        """Change the number of shards; stored vectors move, nothing is re-encoded.

        New shards load their slices from SQL; existing ones drop the pages that
        moved away (with jump hashing, growing moves pages only onto new shards).
        Searches wait for the change. Returns counts of pages dropped and loaded.
        """
        self._db.check_open()
        if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
            raise InvalidInputError(f"shards must be a positive integer, got {shards!r}")
        with self._layout_lock.write():
            old = self.n_shards
            if shards > old:
                self._start(range(old, shards), shards)
            keep, gone = self._actors[:shards], self._actors[shards:]
            moves = self._call_all(
                keep[:old],
                lambda i, a: a.relayout.remote(i, shards),
                shards=range(min(old, shards)),
            )
            for actor in gone:
                ray.kill(actor)
            self._actors = keep
        return {
            "dropped": sum(d for d, _ in moves),
            "loaded": sum(lo for _, lo in moves),
            "shards": shards,
        }

    # -- search ----------------------------------------------------------------
    def search_many(
        self,
        queries: Sequence[Query],
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        *,
        exhaustive: bool = False,
        mode: str | None = None,
        phrase: str | None = None,
        lexical_text: Sequence[str | None] | None = None,
        tuning: SearchTuning | None = None,
        hybrid: HybridOptions | None = None,
        **deprecated: Any,
    ) -> list[list[SearchHit]]:
        """MaxSim over the shards. The lexical and hybrid modes read the full-text index
        in SQL, which the shards do not hold: they are refused here, not answered
        partially."""
        wanted = mode or deprecated.get("search_mode") or self.config.search_mode
        exact = deprecated.get("exact")  # the old name of phrase=
        if wanted != "maxsim" or phrase is not None or exact is not None or lexical_text:
            raise InvalidInputError(
                "a ShardedStore ranks by MaxSim only: open a Store on the same database "
                "for mode='lexical' or 'hybrid' and for phrase="
            )
        self._db.check_open()
        request = search_request(
            self.config,
            queries,
            k,
            filter,
            exhaustive=exhaustive,
            mode=mode,
            tuning=tuning,
            hybrid=hybrid,
            legacy=deprecated,
        )
        vectors = query_vectors(self._encoders, self.dim, request.queries)
        allowed = None
        if filter is not None:
            with Session(self._db.engine) as session:
                allowed = np.asarray(matching_page_ids(session, filter), dtype=np.int64)
        rankings = self.rank(vectors, request.k, request.settings, allowed, request.exhaustive)
        return hydrate(self._db.engine, rankings)

    def rank(
        self,
        vectors: list[npt.NDArray[np.float32]],
        k: int,
        params: StoreConfig,
        allowed: npt.NDArray[np.int64] | None,
        exhaustive: bool,
    ) -> list[Ranking]:
        """Fan out to the shards and merge their exact top ``k`` per query."""
        # Every write committed before this line is visible to this search.
        min_change = self._sync.last_change()
        with self._layout_lock.read():
            n = self.n_shards
            parts = split_by_shard(allowed, n) if allowed is not None else [None] * n
            asked = [i for i in range(n) if parts[i] is None or len(parts[i]) > 0]  # type: ignore[arg-type]
            shared = ray.put(vectors)  # one copy in the object store, read by every shard
            search = params.search_params()
            replies: list[SearchReply] = self._call_all(
                [self._actors[i] for i in asked],
                lambda i, a: a.search.remote(
                    shared, k, search, parts[i], exhaustive, min_change, (i, n)
                ),
                shards=asked,
            )
        return merge_rankings([r for r, _ in replies], len(vectors), k)

    def score_pages(
        self,
        queries: list[npt.NDArray[np.float32]],
        candidates: list[npt.NDArray[np.int64]],
        exact: bool,
    ) -> list[npt.NDArray[np.float32]]:
        """Exact MaxSim of each query against its own candidate pages, in their order:
        each page is scored by the shard that owns it."""
        min_change = self._sync.last_change()
        with self._layout_lock.read():
            n = self.n_shards
            owners = [np.asarray(shard_of(pages, n), np.int64) for pages in candidates]
            asked = sorted({int(s) for owner in owners for s in owner.tolist()})
            shared = ray.put(queries)
            replies = self._call_all(
                [self._actors[i] for i in asked],
                lambda i, a: a.score.remote(
                    shared,
                    [pages[owner == i] for pages, owner in zip(candidates, owners, strict=True)],
                    exact,
                    min_change,
                    (i, n),
                ),
                shards=asked,
            )
        out = [np.zeros(len(pages), np.float32) for pages in candidates]
        for shard, scores in zip(asked, replies, strict=True):
            for qi, owner in enumerate(owners):
                out[qi][owner == shard] = scores[qi]
        return out

    def _call_all(self, actors: list[Any], submit: Any, shards: Sequence[int]) -> list[Any]:
        """Call every actor; retry one that died after it restarts; all or an error."""
        deadline = time.monotonic() + self.timeout_s
        pending = {
            pos: submit(shard, actor)
            for pos, (shard, actor) in enumerate(zip(shards, actors, strict=True))
        }
        attempts = dict.fromkeys(pending, 0)
        results: dict[int, Any] = {}
        while pending:
            pos, ref = next(iter(pending.items()))
            shard = shards[pos]
            try:
                results[pos] = ray.get(ref, timeout=max(0.0, deadline - time.monotonic()))
                del pending[pos]
            except GetTimeoutError as exc:
                raise ShardUnavailableError(
                    f"shard {shard} did not answer within {self.timeout_s:.0f} s"
                ) from exc
            except RayActorError as exc:
                attempts[pos] += 1
                if attempts[pos] > self.retries:
                    raise ShardUnavailableError(
                        f"shard {shard} failed {attempts[pos]} times: {type(exc).__name__}"
                    ) from exc
                self._await_ready(actors[pos], shard, deadline)
                pending[pos] = submit(shard, actors[pos])
        return [results[pos] for pos in range(len(actors))]

    def _await_ready(self, actor: Any, shard: int, deadline: float) -> None:
        """Wait for a restarting shard to load again, up to ``deadline``.

        Ray answers a call to a restarting actor with ActorUnavailableError (or queues
        it), and one to an actor past ``max_restarts`` with ActorDiedError at once; a
        few of those in a row (the first may race Ray's own notice of the restart)
        mean the shard is gone for good, and waiting longer would not help.
        """
        died = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ShardUnavailableError(
                    f"shard {shard} did not come back within {self.timeout_s:.0f} s"
                )
            try:
                ray.get(actor.ready.remote(), timeout=left)
                return
            except GetTimeoutError:
                continue
            except ActorDiedError as exc:
                died += 1
                if died >= DIED_CONFIRMATIONS:
                    raise ShardUnavailableError(
                        f"shard {shard} is dead and Ray will not restart it "
                        f"(max_restarts={self._actor_options['max_restarts']})"
                    ) from exc
            except RayActorError:
                died = 0
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def stats(self) -> dict[str, Any]:  # type: ignore[override]
        """The store's description, with one entry per shard (pages, tokens, memory)."""
        self._db.check_open()
        with self._layout_lock.read():
            shards = self._call_all(
                self._actors, lambda _i, a: a.stats.remote(), shards=range(self.n_shards)
            )
        return {
            "pages": sum(s["pages"] for s in shards),
            "tokens": sum(s["tokens"] for s in shards),
            "dim": self.dim,
            "vector_dtype": self._sync.dtype,
            "encoder": self.encoder_name,
            "encoder_fingerprint": self.encoder_fingerprint,
            "change_no": self._sync.last_change(),
            "n_shards": len(shards),
            "placement": "jump consistent hash of the page id",
            "shards": shards,
        }

    def reindex(self) -> None:
        """Rebuild every shard's candidate index from its vectors (and snapshot it)."""
        self._db.check_open()
        with self._layout_lock.read():
            self._call_all(
                self._actors, lambda _i, a: a.reindex.remote(), shards=range(self.n_shards)
            )

    def reencode(self, *args: Any, **kwargs: Any) -> Any:
        """Refused: re-encode with a Store on the same database; shards then catch up."""
        raise InvalidInputError(
            "re-encode through a Store opened on the same database; the shards catch up "
            "from the change log at their next search"
        )

    def shard_pids(self) -> list[int]:
        """Process ids of the shard actors (tests kill one to exercise restarts)."""
        return [
            int(r["pid"])
            for r in self._call_all(
                self._actors, lambda _i, a: a.ready.remote(), shards=range(self.n_shards)
            )
        ]


def merge_rankings(per_shard: list[list[Ranking]], n_queries: int, k: int) -> list[Ranking]:
    """The best ``k`` of the shards' rankings per query, ties by smaller page id.

    Pages are disjoint across shards and each shard's list is its exact top ``k``,
    so the merged list is the exact top ``k`` of the union.
    """
    merged: list[Ranking] = []
    for qi in range(n_queries):
        pairs = [pair for ranking in per_shard for pair in ranking[qi]]
        pairs.sort(key=lambda pair: (-float(np.float32(pair[1])), pair[0]))
        merged.append(pairs[:k])
    return merged
