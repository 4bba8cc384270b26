"""Bytes on disk of a SQLite store and its derived index files."""

from __future__ import annotations

from pathlib import Path


def disk_footprint(db_path: Path) -> dict[str, int]:
    db_path = Path(db_path)
    sql = sum(
        p.stat().st_size
        for p in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm"))
        if p.exists()
    )
    index_dir = db_path.with_name(db_path.name + ".index")
    index = (
        sum(p.stat().st_size for p in index_dir.glob("*") if p.is_file())
        if index_dir.exists()
        else 0
    )
    return {"sql_bytes": sql, "index_bytes": index, "total_bytes": sql + index}
