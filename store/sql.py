"""Engines and transactions: SQLite from a path (WAL, durable commits), any URL otherwise."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.pool import StaticPool

from latestore.errors import StoreBusyError, StoreFullError, StoreReadOnlyError

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Values per IN (...) list. PostgreSQL refuses a statement with more than 65,535 bound
# parameters, and SQLite builds before 3.32 more than 999; a list of ids can be longer.
SQL_CHUNK = 500
T = TypeVar("T")


def chunks(items: Sequence[T], size: int = SQL_CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in slices of ``size``: one IN (...) list each (readers and writers alike)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def to_url(target: str | Path) -> str:
    """A filesystem path becomes a SQLite URL; anything with ``://`` is a URL already."""
    text = str(target)
    if "://" in text:
        return text
    if text == ":memory:":
        return "sqlite://"
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    database = parsed.database
    if str(parsed.query.get("uri", "")).lower() in ("true", "1") and database.startswith("file:"):
        # A SQLite URI filename (``file:/path?mode=ro``): the file is its path part, or
        # the derived index folder would land in a ``file:`` folder under the cwd.
        path = unquote(urlsplit(database).path)
        if path in ("", ":memory:") or parsed.query.get("mode") == "memory":
            return None
        return Path(path)
    return Path(database)


def default_index_dir(url: str) -> Path | None:
    """Where derived index files live: beside a SQLite file, else in the user cache."""
    db_file = sqlite_file(url)
    if db_file is not None:
        return db_file.with_name(db_file.name + ".index")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return None  # in-memory database: nothing outlives the process
    safe = parsed.render_as_string(hide_password=True)
    digest = hashlib.sha256(safe.encode()).hexdigest()[:16]
    return Path.home() / ".cache" / "latestore" / digest


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(url, pool_pre_ping=True)
        event.listen(engine, "handle_error", _busy_as_typed_error)
        return engine
    kwargs: dict[str, Any] = {}
    if sqlite_file(url) is None:
        # One shared connection, or every checkout would see a new empty database.
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        kwargs.update(
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
        read_only = _read_only_uri(sqlite_file(url))  # type: ignore[arg-type]
        if read_only is not None:
            kwargs["connect_args"].update(uri=True)
            kwargs["creator"] = lambda: sqlite3.connect(read_only, **kwargs["connect_args"])
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Transactions are begun explicitly below, so the driver must not do it itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if sqlite_file(url) is not None:
            # WAL lets readers (threads and other processes) run while one writer
            # commits; synchronous=FULL makes every acknowledged commit durable.
            _use_wal(cursor)
            cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    event.listen(engine, "handle_error", _busy_as_typed_error)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock up front (BEGIN IMMEDIATE): a deferred transaction
        # that upgrades from read to write can fail at once instead of waiting.
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _read_only_uri(path: Path) -> str | None:
    """A read-only SQLite URI for a database file this process may not write; None for
    one it may (or that does not exist yet).

    A WAL database is read through its -shm file, which SQLite creates beside it: in a
    folder this process cannot write, the file could not even be read. Without a -wal
    file (no writer has it open, nothing is uncommitted) it is opened immutable, which
    needs no -shm; with one, read-only through the writer's -shm.
    """
    if not path.exists() or (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        return None
    wal = path.with_name(path.name + "-wal")
    flags = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    return f"file:{quote(str(path))}?{flags}"


def _use_wal(cursor: Any) -> None:
    """Put the database in WAL mode, which the file then keeps.

    Switching needs the file alone, and SQLite reports "database is locked" at once,
    without its busy timeout, when another connection is switching or creating the
    same new file (6 processes opening one new store at once failed 5 times in 30 on
    the CI machine). So the switch is retried, within the busy timeout, and skipped
    when the file is in WAL mode already.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.002
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc).lower():
                # A file this process may only read: read it in the mode it is in (its
                # writes are refused later with StoreReadOnlyError).
                return
            busy = "locked" in str(exc).lower() or "busy" in str(exc).lower()
            if not busy or time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(2 * pause, 0.1)


def _busy_as_typed_error(context: ExceptionContext) -> None:
    """A writer that waited out the lock timeout gets StoreBusyError, not a driver error.

    SQLite reports it as "database is locked" after busy_timeout; PostgreSQL as
    lock_not_available (SQLSTATE 55P03) when the server's ``lock_timeout`` is set.
    """
    original = context.original_exception
    message = str(original).lower()
    sqlstate = getattr(original, "sqlstate", None)
    _full_or_read_only(original, message, sqlstate)
    if "database is locked" in message or "database is busy" in message:
        waited = f"{SQLITE_BUSY_TIMEOUT_MS / 1000:g} s"
    elif sqlstate == "55P03":
        waited = "the server's lock_timeout"
    else:
        return
    raise StoreBusyError(
        f"another writer held the store's write lock for longer than {waited}; nothing "
        f"was written, retry later ({original})"
    ) from original


def _full_or_read_only(original: BaseException, message: str, sqlstate: str | None) -> None:
    """A full disk and a database this process may not write are the user's to fix, and
    nothing was written: typed errors that say so, not driver errors.

    SQLite: SQLITE_FULL ("database or disk is full"), SQLITE_READONLY ("attempt to
    write a readonly database"); PostgreSQL: disk_full (53100), read_only_sql_transaction
    (25006), insufficient_privilege (42501).
    """
    if "database or disk is full" in message or sqlstate == "53100":
        raise StoreFullError(
            f"the disk holding the store is full; nothing was written ({original})"
        ) from original
    if "readonly database" in message or sqlstate in ("25006", "42501"):
        raise StoreReadOnlyError(
            f"the store is read-only for this process; nothing was written ({original})"
        ) from original
