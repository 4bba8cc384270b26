"""Bytes per token by part of a compact-only store at 128 dims, on synthetic tokens.

Builds a ``compact-only`` store from bench/scale_data.py's clustered corpus (128-dim
tokens, 100-500 a page), written batch by batch as a streaming ingest would (so the
codebook versions grow with the store), and reports the SQLite file per token split
into code blobs, codebook blobs and the rest (page rows, change log, b-tree and
overflow-page slack, from SQLite's ``dbstat`` table when it is compiled in). With
``--queries N``, also overlap@10 of the default search against float16 exhaustive
MaxSim over the planted queries.

    python -m bench.compact_bytes --tokens 1000000 --queries 30
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.scale_data import DIM, Corpus
from latestore import Page, PrecomputedVectors, StorageConfig, Store, StoreConfig
from latestore.store.footprint import sqlite_bytes


def parts(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        out: dict[str, int] = {}
        for table in ("ls_page_codes", "ls_codebooks"):
            (total,) = con.execute(f"SELECT coalesce(sum(length(data)), 0) FROM {table}").fetchone()
            out[f"{table}_payload"] = int(total)
        try:
            rows = con.execute(
                "SELECT name, sum(pgsize), sum(unused) FROM dbstat GROUP BY name"
            ).fetchall()
            out.update({f"file:{name}": int(size) for name, size, _ in rows})
            out.update({f"unused:{name}": int(unused) for name, _, unused in rows})
        except sqlite3.OperationalError:
            pass  # no dbstat in this SQLite build
        return out
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=0)
    parser.add_argument("--bits", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    corpus = Corpus(args.tokens, n_queries=max(args.queries, 1))
    config = StoreConfig(storage=StorageConfig(tier="compact-only", compact_bits=args.bits))
    result: dict[str, Any] = {"tokens_wanted": args.tokens, "dim": DIM, "bits": args.bits}
    kept: list[np.ndarray] = []
    page_ids: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "compact.db"
        start = time.perf_counter()
        tokens = pages = 0
        with Store.open(path, PrecomputedVectors(dim=DIM), config=config) as store:
            for batch in corpus.batches():
                page_ids += store.add_pages([Page(vectors=v) for v in batch])
                tokens += sum(len(v) for v in batch)
                pages += len(batch)
                if args.queries:
                    kept.extend(batch)
            result["build_s"] = time.perf_counter() - start
            result["codebooks"] = store.stats().index["codebooks"]
            result["centroids"] = store.stats().index["centroids"]
            if args.queries:
                result.update(quality(store, corpus, kept, page_ids))
        total = sqlite_bytes(path) or 0
        found = parts(path)
    result.update(tokens=tokens, pages=pages, tokens_per_page=tokens / pages)
    per = {k: v / tokens for k, v in found.items()}
    per["all_in"] = total / tokens
    per["rest"] = per["all_in"] - per["ls_page_codes_payload"] - per["ls_codebooks_payload"]
    result["bytes_per_token"] = per
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


def quality(
    store: Store, corpus: Corpus, pages: list[np.ndarray], page_ids: list[int]
) -> dict[str, float]:
    """overlap@10 of the default search against float16 exhaustive MaxSim (numpy)."""
    lengths = np.array([len(p) for p in pages])
    starts = np.cumsum(lengths) - lengths
    flat = np.concatenate(pages).astype(np.float32)
    number = {pid: n for n, pid in enumerate(page_ids)}
    overlaps, found = [], []
    for page_no, query in sorted(corpus.queries.items()):
        sims = query @ flat.T  # (32, tokens); pages lie contiguous
        scores = np.maximum.reduceat(sims, starts, axis=1).sum(axis=0)
        truth = set(np.argsort(-scores, kind="stable")[:10].tolist())
        got = [number[h.page_id] for h in store.search(query, k=10)]
        overlaps.append(len(set(got) & truth) / 10)
        found.append(float(got[:1] == [page_no]))
    return {"overlap10": float(np.mean(overlaps)), "planted_at_1": float(np.mean(found))}


if __name__ == "__main__":
    main()
