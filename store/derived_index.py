"""The derived index: the in-memory copy of SQL's vectors that searches rank, its sync
and its lock.

Loaded on first use (every page's vectors from SQL, or a snapshot and the changes
since), so a store opened to delete, list or read pages never pays for it. The
database applies each committed write to it (:meth:`DerivedIndex.apply`) after the
commit, never before: the index only ever holds what SQL holds.

What is loaded is the loader's business: ``Store`` gives the loader, and a store whose
index lives elsewhere (a sharded store) gives its own (see ``Store._derived_index``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from latestore.errors import StoreClosedError
from latestore.models import StoreConfig
from latestore.store.rwlock import ReadWriteLock
from latestore.store.sync import IndexSync

# Builds the index for these settings and fills it; returns it and how it was loaded
# ("snapshot", "snapshot+replay", "rebuilt", ...).
IndexLoader = Callable[[StoreConfig], tuple[IndexSync, str]]


class DerivedIndex:
    """Owns the synced index: load on first use, the lock searches share, and closing."""

    def __init__(self, loader: IndexLoader, config: StoreConfig) -> None:
        self.loader = loader
        self._config = config  # the settings the index is built with when it loads
        # Searches share the lock; applying a change, catching up and saving take it
        # alone. The SQL write lock is the database's: a writer queued behind another
        # process's write lock (up to the busy timeout) must not stall searches here.
        self.lock = ReadWriteLock()
        self._load_lock = threading.Lock()
        self._sync: IndexSync | None = None
        self._closed = False
        self.opened_from: str | None = None  # how it was loaded: snapshot, rebuilt...

    @property
    def sync(self) -> IndexSync:
        """The synced index, loaded on first use."""
        if self._sync is None:
            with self._load_lock:
                if self._sync is None:
                    if self._closed:
                        raise StoreClosedError("the store is closed")
                    self._sync, self.opened_from = self.loader(self._config)
        return self._sync

    @property
    def loaded(self) -> bool:
        return self._sync is not None

    def apply(
        self, change_no: int, page_ids: list[int] | None, vectors: Callable[[], list[Any]] | None
    ) -> None:
        """Apply a change this process just committed. Call with :attr:`lock` held for
        writing. ``page_ids`` None: re-read what changed from SQL (the change log);
        ``vectors`` None: the pages were deleted; else the vectors as SQL stores them."""
        if page_ids is None:
            self.sync.catch_up()
        else:
            self.sync.applied_own(change_no, page_ids, [] if vectors is None else vectors())

    def set_window_scoring(self, mode: str, config: StoreConfig) -> None:
        """Score pages of several windows by ``mode`` from now on (``config`` records it)."""
        with self.lock.write():
            self._config = config
            if self._sync is None:
                return  # the index is built with ``config`` when it loads
            index: Any = self._sync.index
            index.window_scoring = mode
            self._sync.refresh_windows()

    def close(self, release: Callable[[], None]) -> None:
        """Snapshot the index (if loaded), free its vectors, then ``release`` the rest."""
        with self.lock.write():
            if self._closed:
                return
            try:
                if self._sync is not None:
                    self._sync.save()
            finally:
                self._closed = True
                if self._sync is not None:
                    self._sync.close()  # a closed store may live on: free what it holds
                release()

    @property
    def closed(self) -> bool:
        return self._closed
