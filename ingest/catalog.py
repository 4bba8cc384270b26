"""Read-only questions about what a store already holds, answered from SQL.

Ingestion asks "which pages of this file are stored, and from which version of it?"
before rendering anything, and the CLI counts documents and deletes whole documents.
The Store's public API has no listing call, so these read the page table on a second,
read-only engine over the same database (SQLite's WAL lets it run beside the writer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, distinct, func, select

from latestore.store.schema import PageRow
from latestore.store.sql import make_engine, sqlite_file, to_url


class Catalog:
    """Page listings of one store, by document."""

    def __init__(self, target: str | Path) -> None:
        self.url = to_url(target)
        self._engine: Engine = make_engine(self.url)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def pages_of(self, document_id: str) -> dict[str, tuple[int, dict[str, Any]]]:
        """external id -> (page id, metadata) for every page of one document."""
        query = select(PageRow.external_id, PageRow.id, PageRow.meta).where(
            PageRow.document_id == document_id
        )
        with self._engine.connect() as conn:
            return {
                str(external_id): (int(page_id), dict(meta or {}))
                for external_id, page_id, meta in conn.execute(query)
                if external_id is not None
            }

    def counts(self) -> dict[str, int]:
        with self._engine.connect() as conn:
            pages = conn.execute(select(func.count(PageRow.id))).scalar_one()
            documents = conn.execute(select(func.count(distinct(PageRow.document_id)))).scalar_one()
            images = conn.execute(
                select(func.count(PageRow.id)).where(PageRow.image.is_not(None))
            ).scalar_one()
            image_bytes = conn.execute(select(func.sum(func.length(PageRow.image)))).scalar_one()
        return {
            "pages": int(pages),
            "documents": int(documents),
            "pages_with_image": int(images),
            "image_bytes": int(image_bytes or 0),
        }

    def cuts(self, page_ids: list[int]) -> tuple[int, int]:
        """How many of ``page_ids`` the encoder cut, and how many text tokens it dropped."""
        truncated = dropped = 0
        with self._engine.connect() as conn:
            for start in range(0, len(page_ids), 500):
                chunk = page_ids[start : start + 500]
                n, tokens = conn.execute(
                    select(
                        func.count(PageRow.id).filter(PageRow.tokens_dropped > 0),
                        func.coalesce(func.sum(PageRow.tokens_dropped), 0),
                    ).where(PageRow.id.in_(chunk))
                ).one()
                truncated += int(n)
                dropped += int(tokens or 0)
        return truncated, dropped

    def sqlite_path(self) -> Path | None:
        return sqlite_file(self.url)


def directory_bytes(path: Path | None) -> int | None:
    if path is None or not path.exists():
        return None
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def sqlite_bytes(db_path: Path | None) -> int | None:
    if db_path is None:
        return None
    files = (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm"))
    return sum(p.stat().st_size for p in files if p.exists())
