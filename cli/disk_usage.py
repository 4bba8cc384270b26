"""Bytes on disk of a store's SQLite files and index folder (for ``latestore info``)."""

from __future__ import annotations

from pathlib import Path


def directory_bytes(path: Path | None) -> int | None:
    if path is None or not path.exists():
        return None
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def sqlite_bytes(db_path: Path | None) -> int | None:
    if db_path is None:
        return None
    files = (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm"))
    return sum(p.stat().st_size for p in files if p.exists())
