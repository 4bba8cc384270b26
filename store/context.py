"""What the store's parts share: the database, the synced index, the locks, the encoder.

The Store facade builds one StoreContext at open and hands it to the modules that
do the work (page_writer, searcher, reader, maintenance); none of them keeps state
of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from latestore.encoders import Encoder
from latestore.errors import StoreClosedError
from latestore.models import StoreConfig
from latestore.store.fulltext import LexicalSearch
from latestore.store.rwlock import ReadWriteLock
from latestore.store.sync import IndexSync

ProgressCallback = Callable[[int, int], None]


@dataclass
class StoreContext:
    engine: Engine
    # Builds and loads the derived index (reads every vector from SQL, or a snapshot
    # and the changes since): done on first use, so a store opened to delete, list or
    # read pages never pays for it.
    load_sync: Callable[[], tuple[IndexSync, str]]
    config: StoreConfig
    dim: int
    vector_dtype: str
    # Returns the encoder, loading the recorded one on first use.
    encoder: Callable[[], Encoder]
    # The full-text index of page text (lexical and hybrid search modes).
    lexical: LexicalSearch
    # index_lock guards the in-memory index: searches share it, updates take it alone.
    # write_lock serialises this process's SQL write transactions; it is separate so a
    # writer queued behind another process's write lock (up to the busy timeout) does
    # not stall searches here.
    index_lock: ReadWriteLock = field(default_factory=ReadWriteLock)
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False
    opened_from: str | None = None  # how the index was loaded: snapshot, rebuilt...
    # The encoder fingerprint the store records, as this process last saw or wrote it
    # (a write with a later encoder revision moves it: reencode.check_encoded_with).
    encoder_fingerprint: str = ""
    _sync: IndexSync | None = None
    _load_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def sync(self) -> IndexSync:
        """The synced derived index, loaded on first use."""
        if self._sync is None:
            with self._load_lock:
                if self._sync is None:
                    self.check_open()
                    self._sync, self.opened_from = self.load_sync()
        return self._sync

    @property
    def index_loaded(self) -> bool:
        return self._sync is not None

    @property
    def dtype(self) -> str:
        """How vectors are stored in SQL: float16, float32 or int8."""
        return self.vector_dtype

    def check_open(self) -> None:
        if self.closed:
            raise StoreClosedError("the store is closed")
