"""Lexical rankings of a collection from a real store's full-text index, on each backend.

The full-text index depends only on page text, so each page is stored with one
placeholder vector (its vectors play no part in the lexical mode); the rankings come
from ``Store.search(mode="lexical")``, the same SQL the hybrid mode runs. Stores are
kept (SQLite under the cache folder, PostgreSQL as ``<prefix>_<collection>``
databases) and reused, and the rankings cached as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.ranking_data import Collection

Ranking = list[tuple[str, float]]


def _pg_url(admin_url: str, name: str) -> str:
    base = make_url(admin_url)
    database = f"{base.database}_bench_{name}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}
            ).first()
            if exists is None:
                conn.execute(text(f'CREATE DATABASE "{database}"'))
    finally:
        admin.dispose()
    return base.set(database=database).render_as_string(hide_password=False)


def lexical_runs(
    collection: Collection,
    query_ids: list[str],
    texts: list[str],
    backend: str,
    cache: Path,
    pg_admin_url: str | None,
    depth: int = 100,
) -> dict[str, Ranking]:
    """Each query's top ``depth`` lexical hits as (page id, score), best first."""
    from latestore import Page, PrecomputedVectors, Store

    runs_file = cache / collection.name / f"lexical-{backend}-{len(query_ids)}-{depth}.json"
    if runs_file.exists():
        stored = json.loads(runs_file.read_text())
        if list(stored) == query_ids:
            return {q: [(p, s) for p, s in r] for q, r in stored.items()}
    if backend == "sqlite":
        target = str(cache / collection.name / "lexical.db")
    else:
        assert pg_admin_url is not None, "PostgreSQL needs LATESTORE_TEST_PG_URL"
        target = _pg_url(pg_admin_url, collection.name)
    runs_file.parent.mkdir(parents=True, exist_ok=True)
    placeholder = np.zeros((1, 384), np.float32)
    placeholder[0, 0] = 1.0
    with Store.open(target, PrecomputedVectors(dim=384, name="lexical-only")) as store:
        if store.stats().pages != len(collection.ids):
            for begin in range(0, len(collection.ids), 500):
                store.upsert_pages(
                    [
                        Page(text=t, vectors=placeholder, external_id=i, document_id=i)
                        for i, t in zip(
                            collection.ids[begin : begin + 500],
                            collection.texts[begin : begin + 500],
                            strict=True,
                        )
                    ]
                )
        runs: dict[str, Ranking] = {}
        for qid, words in zip(query_ids, texts, strict=True):
            hits = store.search(words, k=depth, mode="lexical")
            runs[qid] = [(str(h.external_id), float(h.score)) for h in hits]
    runs_file.write_text(json.dumps(runs))
    return runs
