"""Keeping the derived index in step with SQL: load, replay, rebuild, snapshot."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, select

from latestore.errors import IndexSnapshotError, StoreCorruptionError
from latestore.index.codec import from_storage
from latestore.index.vector_file import VectorFolder
from latestore.store.head_probe import HeadProbe
from latestore.store.schema import ChangeRow, PageRow, PageVectorsRow, StoreRow
from latestore.store.sql import chunks

if TYPE_CHECKING:  # the index brings torch: loaded only when a store needs it
    from latestore.index.late_index import LateInteractionIndex
    from latestore.index.plan import RankingIndex
    from latestore.models import StoreStats

log = logging.getLogger("latestore")

SNAPSHOT_NAME = "candidates.snapshot"
VECTORS_NAME = "vectors"  # the persisted rank-vector folder (index/vector_file.py)


def decode(
    page_id: int, blob: bytes, n_tokens: int, dim: int, dtype: str
) -> npt.NDArray[np.floating]:
    """A page's vectors from their SQL row; StoreCorruptionError when the row is damaged."""
    try:
        return from_storage(blob, n_tokens, dim, dtype)
    except ValueError as exc:
        raise StoreCorruptionError(
            f"the stored vectors of page {page_id} are damaged in the database ({exc}); "
            f"restore a backup, or delete and re-add that page",
            page_ids=[page_id],
        ) from exc


class IndexSync:
    """Owns the derived index of one store and the change number it reflects."""

    def __init__(
        self,
        engine: Engine,
        index: LateInteractionIndex,
        store_uuid: str,
        dtype: str,
        index_dir: Path | None,
    ) -> None:
        self.engine = engine
        self.head = HeadProbe(engine)
        self.index = index
        self.store_uuid = store_uuid
        self.dtype = dtype
        self.index_dir = index_dir
        self.applied_change = 0
        self.snapshot_change = -1
        self.vectors_change = -1  # the change number the vector folder last published
        self.vectors_from = "sql"  # how the rank vectors were loaded at open
        self.tokens_since_snapshot = 0
        self.pruned_through = 0
        self.resyncs = 0  # full reloads forced by a pruned change log

    @property
    def snapshot_path(self) -> Path | None:
        return None if self.index_dir is None else self.index_dir / SNAPSHOT_NAME

    def vector_folder(self) -> VectorFolder | None:
        """The persisted vector folder, when the rank vectors live on disk beside the
        snapshot (``vector_cache="disk"`` and an index folder)."""
        if self.index_dir is None or self.index.vectors.arena is None:
            return None
        return VectorFolder(self.index_dir / VECTORS_NAME)

    def vector_identity(self) -> dict[str, Any]:
        return {"store_uuid": self.store_uuid, "dim": self.index.dim}

    def _read_vectors(
        self, page_ids: list[int] | None = None
    ) -> Iterator[tuple[int, npt.NDArray[Any]]]:
        dim = self.index.dim
        with self.engine.connect() as conn:
            if page_ids is None:
                query = select(PageVectorsRow.page_id, PageVectorsRow.n_tokens, PageVectorsRow.data)
                rows = conn.execution_options(yield_per=512).execute(query)
                for page_id, n_tokens, data in rows:
                    yield page_id, decode(page_id, data, n_tokens, dim, self.dtype)
                return
            for chunk in chunks(page_ids):
                query = select(
                    PageVectorsRow.page_id, PageVectorsRow.n_tokens, PageVectorsRow.data
                ).where(PageVectorsRow.page_id.in_(chunk))
                for page_id, n_tokens, data in conn.execute(query):
                    yield page_id, decode(page_id, data, n_tokens, dim, self.dtype)

    def last_change(self) -> int:
        return self.head.read()

    def load(self) -> str:
        """Fill the index at open; returns how: "snapshot", "snapshot+replay" or "rebuilt"."""
        # Read the change number first: vectors read afterwards are at least that new,
        # and anything committed meanwhile is replayed on the next catch-up.
        head = self.last_change()
        with self.engine.connect() as conn:
            self.pruned_through = _pruned_through(conn)
        self.vectors_from = self._load_vectors(head)
        how = self._load_snapshot(head)
        if how is None:
            self.index.rebuild()
            how = "rebuilt"
        self.refresh_windows()
        self.applied_change = head
        self.index.vectors.start_verifying()
        self.catch_up()
        return how

    def _load_vectors(self, head: int) -> str:
        """Fill the rank vectors as of ``head`` at least: from the persisted folder plus
        the pages changed since its change number, else from SQL (which then fills the
        folder). Returns "file", "file+replay" or "sql"."""
        cache = self.index.vectors
        folder = self.vector_folder()
        if folder is not None:
            change = cache.attach(folder, self.vector_identity(), max_change=head)
            touched = None if change is None else self._touched_since(change)
            if change is not None and touched is not None:
                for page_id in touched:
                    cache.discard(page_id)
                for page_id, vectors in self._read_vectors(touched):
                    cache.put(page_id, vectors)
                self.vectors_change = change
                return "file+replay" if touched else "file"
            if change is not None:  # the kept change log no longer reaches back
                log.info("latestore: vector file predates the kept change log; rebuilding")
                cache.attach(folder, self.vector_identity(), max_change=-1)
        for page_id, vectors in self._read_vectors():
            cache.put(page_id, vectors)
        return "sql"

    def retry_vector_folder(self) -> None:
        """Write the vector folder again after this session fell back to memory (a disk
        that refused it): map its last published state and replay, or refill it from
        SQL. Called by ``reindex``, the call that rebuilds derived data on request; if
        the disk still refuses, the cache falls back to memory again, as at open."""
        if self.index.vectors.fallback is None or self.vector_folder() is None:
            return
        self.vectors_change = -1
        self.vectors_from = self._load_vectors(self.applied_change)
        self.index.vectors.start_verifying()

    def _load_snapshot(self, head: int) -> str | None:
        path = self.snapshot_path
        if path is None or not path.exists():
            return None
        try:
            header = self.index.load_tokens(path, {"store_uuid": self.store_uuid})
            change = int(header["change_no"])
            if change > head:
                raise IndexSnapshotError(f"snapshot is at change {change}, database at {head}")
        except (IndexSnapshotError, ValueError, KeyError, RuntimeError) as exc:
            log.warning(
                "latestore: index snapshot %s rejected (%s); rebuilding from SQL", path, exc
            )
            return None
        touched = self._touched_since(change)
        if touched is None:
            log.info("latestore: index snapshot %s predates the kept change log; rebuilding", path)
            return None
        self._replay_from_cache(touched)
        if not self.index.consistent():
            log.warning("latestore: index snapshot %s disagrees with SQL; rebuilding", path)
            return None
        self.snapshot_change = change
        return "snapshot+replay" if touched else "snapshot"

    def _touched_since(self, change: int) -> list[int] | None:
        """Pages changed after ``change``; None when the kept log no longer reaches back."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ChangeRow.page_id).where(ChangeRow.change_no > change).distinct()
            )
            touched = sorted(int(r[0]) for r in rows)
            # Read after the log: under READ COMMITTED a prune that committed between the
            # two statements shows here, so a partial answer is never trusted.
            pruned = _pruned_through(conn)
        self.pruned_through = max(self.pruned_through, pruned)
        return None if pruned > change else touched

    def _replay_from_cache(self, page_ids: list[int]) -> None:
        """At open: re-index ``page_ids`` from the vectors just loaded from SQL.

        The cache already holds SQL's current vectors, so reading them again (as
        :meth:`_reapply` must for later changes) would double the replay's I/O.
        """
        if not page_ids:
            return
        cache = self.index.vectors
        self.index.reindex_from_cache(page_ids)
        self.tokens_since_snapshot += sum(cache.n_tokens(p) for p in page_ids if p in cache)

    def _reapply(self, page_ids: list[int]) -> None:
        """Make the index hold exactly SQL's current vectors for ``page_ids``."""
        if not page_ids:
            return
        self.index.remove(page_ids)
        fresh = dict(self._read_vectors(page_ids))
        ids = sorted(fresh)
        self.index.upsert(ids, [fresh[p] for p in ids])
        self.refresh_windows(ids)
        self.tokens_since_snapshot += sum(len(v) for v in fresh.values())

    def refresh_windows(self, page_ids: list[int] | None = None) -> None:
        """Read the rows per window of held pages (all, or ``page_ids``) from SQL, for
        best-window scoring; nothing to do when the index scores the union."""
        index = self.index
        if not getattr(index, "best_window", False):
            return
        cache = index.vectors
        found: dict[int, list[int] | None]
        if page_ids is None:
            index.windows.clear()
            found = {p: r for p, r in window_rows_of(self.engine).items() if p in cache}
        else:
            rows = window_rows_of(self.engine, page_ids)
            found = {p: rows.get(p) if p in cache else None for p in page_ids}
        index.set_windows(found)

    def ranker(self) -> RankingIndex:
        """What a search ranks with, once caught up: this index. (A sharded store's sync
        answers with its shards, as of the change it caught up to.)"""
        return self.index

    def rebuild(self) -> None:
        """Rebuild the candidate index from the held vectors (``Store.reindex``; the
        caller catches up first and saves after)."""
        self.retry_vector_folder()  # a folder a full disk had refused
        self.index.rebuild()
        self.snapshot_change = -1

    def describe(self, stats: StoreStats) -> StoreStats:
        """``Store.stats`` as this index sees it (a sharded one adds its shards)."""
        return stats

    def close(self) -> None:
        """Release what the index holds; the store is closing (after the last save)."""
        self.index.vectors.clear()  # a closed store may live on: free them
        self.head.close()

    def behind(self) -> bool:
        """Has SQL seen changes this index has not applied, or did held vectors fail
        their checksum? (One cheap read.)"""
        return bool(self.index.vectors.damaged) or self.last_change() > self.applied_change

    def catch_up(self) -> bool:
        """Apply changes committed (by this or another process) since the last look,
        and reload from SQL the pages whose persisted vectors failed their checksum."""
        damaged = self.index.vectors.take_damaged()
        if damaged:
            log.warning("latestore: reloading %d damaged pages from SQL", len(damaged))
            self._reapply(damaged)
            self.vectors_change = -1  # republish without the damaged segment
        head = self.last_change()
        if head <= self.applied_change:
            return False
        touched = self._touched_since(self.applied_change)
        if touched is None:
            self._resync()
        else:
            self._reapply(touched)
        self.applied_change = head
        return True

    def _resync(self) -> None:
        """Reload every page from SQL: the log was pruned past what this process applied."""
        log.info("latestore: change log pruned past this index; reloading it from SQL")
        cache = self.index.vectors
        seen: set[int] = set()
        for page_id, vectors in self._read_vectors():
            cache.put(page_id, vectors)
            seen.add(page_id)
        for page_id in cache.page_ids().tolist():
            if page_id not in seen:
                cache.discard(page_id)
        self.index.rebuild()
        self.refresh_windows()
        self.snapshot_change = -1
        self.vectors_change = -1
        self.resyncs += 1

    def applied_own(self, change_no: int, page_ids: list[int], vectors: list[Any]) -> None:
        """Record a change this process just committed, applying it in memory."""
        if change_no == self.applied_change + 1:
            if vectors:
                self.index.upsert(page_ids, vectors)
                self.refresh_windows(page_ids)
            else:
                self.index.remove(page_ids)
            self.applied_change = change_no
            self.tokens_since_snapshot += sum(len(v) for v in vectors) + len(page_ids)
        else:  # another writer committed in between: replay everything from SQL
            self.catch_up()

    def save(self, *, strict: bool = False) -> int:
        """Write the snapshot (if anything changed since the last one); returns bytes.

        A failed write is logged, or raised as IndexSnapshotError when ``strict``.
        """
        path = self.snapshot_path
        if path is None:
            return 0
        written = self._publish_vectors(strict)
        if self.snapshot_change == self.applied_change:
            return written
        try:
            written += self.index.save(
                path, {"store_uuid": self.store_uuid, "change_no": self.applied_change}
            )
        except OSError as exc:
            if strict:
                raise IndexSnapshotError(f"cannot write index snapshot {path}: {exc}") from exc
            # The snapshot only shortens the next open; the write that triggered it is
            # already committed, so a full disk or read-only folder must not fail it.
            log.warning("latestore: cannot write index snapshot %s (%s)", path, exc)
            return 0
        self.snapshot_change = self.applied_change
        self.tokens_since_snapshot = 0
        return written

    def _publish_vectors(self, strict: bool) -> int:
        """Publish the vector folder at the applied change (its writer only)."""
        if self.vectors_change == self.applied_change or self.vector_folder() is None:
            return 0
        header = dict(self.vector_identity(), change_no=self.applied_change)
        try:
            written = self.index.vectors.publish(header)
        except OSError as exc:
            if strict:
                raise IndexSnapshotError(f"cannot write the vector file: {exc}") from exc
            log.warning("latestore: cannot write the vector file (%s)", exc)
            return 0
        if written:
            self.vectors_change = self.applied_change
        return written


def _pruned_through(conn: Connection) -> int:
    return int(conn.execute(select(StoreRow.pruned_through).where(StoreRow.id == 1)).scalar_one())


def window_rows_of(engine: Engine, page_ids: Sequence[int] | None = None) -> dict[int, list[int]]:
    """``ls_pages.window_rows`` of the pages (all, or ``page_ids``) that have some."""
    query = select(PageRow.id, PageRow.window_rows).where(PageRow.window_rows.is_not(None))
    found: dict[int, list[int]] = {}
    with engine.connect() as conn:
        if page_ids is None:
            for page_id, rows in conn.execution_options(yield_per=4096).execute(query):
                found[int(page_id)] = list(rows or ())
        else:
            for chunk in chunks(list(page_ids)):
                for page_id, rows in conn.execute(query.where(PageRow.id.in_(chunk))):
                    found[int(page_id)] = list(rows or ())
    return found
