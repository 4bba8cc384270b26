"""The cheapest read of the store's change counter, which every search makes.

A search first asks whether SQL moved past the index (another process wrote). Through
a pooled SQLAlchemy connection that costs ~0.3 ms, more than the whole GPU ranking;
on a SQLite file the probe keeps one connection of its own (autocommit, so each read
sees the latest commit) and reads in microseconds. Other backends read through the
pool with a plain driver statement, which commits at once and holds no snapshot.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine

from latestore.store.sql import sqlite_file

HEAD_SQL = "SELECT last_change FROM ls_store WHERE id = 1"


class HeadProbe:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # A file database only: an in-memory one has a single shared connection.
        self._own = sqlite_file(str(engine.url)) is not None
        self._raw: Any = None
        self._lock = threading.Lock()

    def read(self) -> int:
        if not self._own:
            with self.engine.connect() as conn:
                return int(conn.exec_driver_sql(HEAD_SQL).scalar_one())
        with self._lock:
            if self._raw is None:
                self._raw = self.engine.raw_connection()
            cursor = self._raw.cursor()
            try:
                cursor.execute(HEAD_SQL)
                return int(cursor.fetchone()[0])
            finally:
                cursor.close()

    def close(self) -> None:
        with self._lock:
            if self._raw is not None:
                self._raw.close()
                self._raw = None
