"""The store's database and its one write entry point.

Every write of a running store (adds, upserts, deletes, re-encode batches, window
backfill, settings and change-log pruning) goes through :meth:`Database.write`::

    with db.write() as tx:
        ...                                   # SQL through tx.session
        tx.changed(page_ids, lambda: vectors)   # what the derived index must apply

``write`` takes this process's write lock, begins the transaction (``BEGIN IMMEDIATE``
on SQLite: the database's write lock now, not at the first write), assigns the change
number (which row-locks ``ls_store`` on PostgreSQL, so change numbers follow commit
order across processes), and on leaving the block without an error commits. After the
commit, and only then, it runs what the transaction asked for on commit, applies the
change to the derived index under the index lock, and runs the snapshot and prune
policy (:mod:`latestore.store.maintenance`). An error in the block rolls everything
back and the derived index is not touched; so does :meth:`WriteTransaction.discard`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from latestore.errors import StoreClosedError
from latestore.models import StoreConfig
from latestore.store import maintenance
from latestore.store.derived_index import DerivedIndex
from latestore.store.fulltext import LexicalSearch
from latestore.store.writes import next_change


class WriteTransaction:
    """One write in progress: its session, its change number, and what to do on commit."""

    def __init__(self, session: Session, change_no: int) -> None:
        self.session = session
        self.change_no = change_no  # 0 for a write that takes no change number
        self.page_ids: list[int] | None = None  # None: the index re-reads from the log
        self.vectors: Callable[[], list[Any]] | None = None
        self.discarded = False
        self.committed: list[Callable[[], None]] = []

    def changed(self, page_ids: list[int], vectors: Callable[[], list[Any]] | None = None) -> None:
        """The pages this write changed, for the derived index to apply without reading
        SQL again: ``vectors()`` gives their vectors exactly as SQL stores them (int8 is
        lossy, and the index must rank as a reopen would); None means deleted. Called
        only if the index is loaded, under its lock. A write that does not call this is
        read back from the change log (``catch_up``)."""
        self.page_ids = page_ids
        self.vectors = vectors

    def on_commit(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` once the transaction has committed (not if it rolls back)."""
        self.committed.append(hook)

    def discard(self) -> None:
        """Roll back instead of committing when the block ends (the change number too)."""
        self.discarded = True


class Database:
    """The store's SQL database: engine, layout, full-text search, the write lock, and
    the derived index each committed write is applied to."""

    def __init__(
        self,
        engine: Engine,
        config: StoreConfig,
        dim: int,
        vector_dtype: str,
        lexical: LexicalSearch,
        derived: DerivedIndex,
    ) -> None:
        self.engine = engine
        self.config = config
        self.dim = dim
        self.dtype = vector_dtype  # how vectors are stored in SQL: float16, float32, int8
        self.lexical = lexical  # the full-text index of page text
        self.derived = derived
        # Serialises this process's SQL write transactions (the database serialises
        # processes); separate from the index lock so searches never wait on it.
        self.write_lock = threading.Lock()
        self.closed = False

    def check_open(self) -> None:
        if self.closed:
            raise StoreClosedError("the store is closed")

    def session(self) -> Session:
        """A session for reading (it begins no write)."""
        return Session(self.engine)

    @contextmanager
    def write(self, *, change: bool = True) -> Iterator[WriteTransaction]:
        """The one write transaction (see the module docstring).

        ``change=False`` for a write that changes no page (a setting, pruning the log):
        it takes no change number, and nothing is applied or pruned after it.
        """
        with self.write_lock, Session(self.engine) as session:
            session.begin()
            session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            # The change number first: on PostgreSQL it is the write lock, so whatever
            # the block reads sees every write committed before this one.
            tx = WriteTransaction(session, next_change(session) if change else 0)
            yield tx
            if tx.discarded:
                return  # closing the session rolls back, change number included
            session.commit()
        for hook in tx.committed:
            hook()
        if not change:
            return
        derived = self.derived
        if derived.loaded:  # else the index reads these rows when it loads
            with derived.lock.write():
                derived.apply(tx.change_no, tx.page_ids, tx.vectors)
                maintenance.maybe_snapshot(derived.sync, self.config)
        maintenance.maybe_prune_changes(self)

    def close(self) -> None:
        """Snapshot the derived index, then release the database."""
        self.derived.close(self._release)

    def _release(self) -> None:
        self.closed = True
        self.engine.dispose()
