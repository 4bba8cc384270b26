"""Bytes on disk of a SQLite store and its derived index files (``latestore info``,
the benchmarks and the evaluation examples)."""

from __future__ import annotations

from pathlib import Path


def sqlite_bytes(db_path: Path | None) -> int | None:
    """The database file with its WAL and shared-memory files; None without a file."""
    if db_path is None:
        return None
    files = (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm"))
    return sum(p.stat().st_size for p in files if p.exists())


def directory_bytes(path: Path | None) -> int | None:
    """Every file under ``path``; None when there is no such folder."""
    if path is None or not path.exists():
        return None
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def disk_footprint(db_path: Path) -> dict[str, int]:
    """SQL, index folder and total bytes of the store at ``db_path``."""
    db_path = Path(db_path)
    sql = sqlite_bytes(db_path) or 0
    index = directory_bytes(db_path.with_name(db_path.name + ".index")) or 0
    return {"sql_bytes": sql, "index_bytes": index, "total_bytes": sql + index}
