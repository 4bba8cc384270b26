"""MaxSim, lexical and hybrid ranking on BEIR-format collections, SQLite and PostgreSQL.

For each collection, builds (or reuses, from ``--stores``) one SQLite store with the
default encoder, then prints nDCG@10 and recall@100 of every search mode at the
default settings (and, for maxsim and hybrid, with exhaustive MaxSim candidates), and
search latency p50/p95 per mode (query vectors and words in: the encoder's time is
left out; queries are encoded once and shared by every mode). With ``--pg-url`` (an admin URL
of a PostgreSQL server where databases may be created), the pages and their stored
vectors are copied into a fresh PostgreSQL database and hybrid ranking is measured
there too: the same vectors, PostgreSQL's own full-text index.

    python examples/evaluate_hybrid.py ../shared/data/scifact ../shared/data/cranfield \\
        --stores /tmp/hybrid-stores --pg-url postgresql+psycopg://user@host/db \\
        --out /tmp/hybrid.json

Cranfield's qrels codes are mapped to gain = 5 - code (1 = most relevant); SciFact's
are used as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import create_engine, make_url, select, text

from latestore import Page, Store
from latestore.evaluation import (
    BeirData,
    beir_pages,
    load_beir,
    metrics_for,
    percentile_ms,
    ranked_ids,
)
from latestore.index.codec import from_storage
from latestore.store.schema import PageRow, PageVectorsRow

CRANFIELD_GAINS = {1.0: 4.0, 2.0: 3.0, 3.0: 2.0, 4.0: 1.0}
MODES = ("maxsim", "lexical", "hybrid")


def build(folder: Path, data: BeirData, db: Path) -> float:
    pages = beir_pages(data.corpus)
    start = time.perf_counter()
    with Store.open(db) as store:
        if store.count() < len(pages):
            for begin in range(0, len(pages), 256):
                store.add_pages(pages[begin : begin + 256])
    return time.perf_counter() - start


def measure(
    store: Store,
    data: BeirData,
    vectors: list[npt.NDArray[np.float32]],
    mode: str,
    exhaustive: bool,
    **settings: Any,
) -> dict[str, Any]:
    """nDCG@10 and recall@100 at default settings (and with exhaustive MaxSim), and
    latency per query with the query's vectors and words given."""
    qids = list(data.queries)
    texts = [data.queries[q] for q in qids]
    runs: dict[str, list[str]] = {}
    seconds = []
    for qid, query, words in zip(qids, vectors, texts, strict=True):
        start = time.perf_counter()
        hits = store.search(query, k=100, mode=mode, lexical_text=words, **settings)
        seconds.append(time.perf_counter() - start)
        runs[qid] = ranked_ids(hits)
    default = metrics_for(runs, data.qrels)
    row: dict[str, Any] = {
        "mode": mode,
        "ndcg10": round(default.ndcg10, 4),
        "recall100": round(default.recall100, 4),
    }
    if exhaustive:
        hits = store.search_many(vectors, k=100, exhaustive=True, mode=mode, lexical_text=texts)
        best = metrics_for({q: ranked_ids(h) for q, h in zip(qids, hits, strict=True)}, data.qrels)
        row.update(
            ndcg10_exhaustive=round(best.ndcg10, 4), recall100_exhaustive=round(best.recall100, 4)
        )
    row.update(
        search_p50_ms=round(percentile_ms(seconds, 50), 1),
        search_p95_ms=round(percentile_ms(seconds, 95), 1),
    )
    return row


@contextmanager
def fresh_pg_database(admin_url: str) -> Iterator[str]:
    name = f"latestore_hybrid_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def copy_to(source: Store, db: Path, target_url: str) -> None:
    """The source's pages, with their stored vectors, into a store at ``target_url``."""
    engine = create_engine(f"sqlite:///{db}")
    statement = (
        select(PageRow.external_id, PageRow.text, PageVectorsRow.n_tokens, PageVectorsRow.data)
        .join(PageVectorsRow, PageVectorsRow.page_id == PageRow.id)
        .order_by(PageRow.id)
    )
    dtype = source.stats()["vector_dtype"]
    with Store.open(target_url, source.encoder) as target, engine.connect() as conn:
        batch: list[Page] = []
        for external_id, page_text, n_tokens, blob in conn.execute(statement):
            vectors = from_storage(blob, n_tokens, source.dim, dtype)
            batch.append(Page(text=page_text, external_id=external_id, vectors=vectors))
            if len(batch) == 512:
                target.add_pages(batch)
                batch = []
        if batch:
            target.add_pages(batch)
    engine.dispose()


def run(
    folder: Path,
    stores: Path,
    pg_url: str | None,
    exhaustive: bool,
    modes: list[str],
    pg_settings: dict[str, Any],
) -> list[dict[str, Any]]:
    gain = (lambda s: CRANFIELD_GAINS.get(s, 0.0)) if folder.name == "cranfield" else None
    data = load_beir(folder, gain)
    db = stores / f"{folder.name}.db"
    build_s = build(folder, data, db)
    rows = []
    with Store.open(db) as store:
        vectors = store.encoder.encode_queries(list(data.queries.values()))
        for mode in modes:
            # Lexical ranking does not use MaxSim: its exhaustive run would be the same.
            row = measure(store, data, vectors, mode, exhaustive and mode != "lexical")
            rows.append({"collection": folder.name, "backend": "sqlite", **row})
            print(json.dumps(rows[-1]), flush=True)
        if pg_url:
            with fresh_pg_database(pg_url) as url:
                copy_to(store, db, url)
                with Store.open(url, store.encoder) as on_pg:
                    row = measure(on_pg, data, vectors, "hybrid", False, **pg_settings)
                rows.append(
                    {"collection": folder.name, "backend": "postgresql", **row, **pg_settings}
                )
                print(json.dumps(rows[-1]), flush=True)
    for row in rows:
        row["build_seconds"] = round(build_s, 1)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--stores", type=Path, default=Path("hybrid-stores"))
    parser.add_argument("--pg-url", default=os.environ.get("LATESTORE_TEST_PG_URL"))
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--modes", default=",".join(MODES), help="SQLite modes to run (comma-separated)."
    )
    parser.add_argument(
        "--pg-lexical-weight", type=float, help="lexical_weight of the PostgreSQL hybrid run."
    )
    parser.add_argument(
        "--no-exhaustive", action="store_true", help="Skip the exhaustive-MaxSim runs."
    )
    args = parser.parse_args()
    args.stores.mkdir(parents=True, exist_ok=True)
    modes = [m for m in args.modes.split(",") if m]
    pg_settings = (
        {} if args.pg_lexical_weight is None else {"lexical_weight": args.pg_lexical_weight}
    )
    rows = [
        row
        for folder in args.folders
        for row in run(folder, args.stores, args.pg_url, not args.no_exhaustive, modes, pg_settings)
    ]
    print(
        f"{'collection':<10} {'backend':<10} {'mode':<7} "
        "nDCG@10 R@100  exh.nDCG exh.R@100 p50/p95 ms"
    )
    for r in rows:
        exhaustive = (
            f"{r['ndcg10_exhaustive']:.4f}   {r['recall100_exhaustive']:.4f}"
            if "ndcg10_exhaustive" in r
            else "  n/a        n/a "
        )
        print(
            f"{r['collection']:<10} {r['backend']:<10} {r['mode']:<7} {r['ndcg10']:.4f}  "
            f"{r['recall100']:.4f} {exhaustive}    {r['search_p50_ms']}/{r['search_p95_ms']}"
        )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
