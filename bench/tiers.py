"""Storage tiers on SciFact and Cranfield: quality against float16 exhaustive, and bytes.

Every tier ranks the very same MiniLM vectors (encoded once, bench/tier_vectors.py):
float16, int8, pooled (ward pooling, factor 2, float16), compact (2-bit residual codes
for candidates, exact final scores on float16 vectors read from SQL) and compact-only
(only the codes; exact MaxSim over the decoded codes). For each: nDCG@10 and
recall@100 of the default search, overlap@10 with float16 exhaustive search, p50
latency (one thread), build time, and bytes per token by part.

Pages carry vectors only (no text), so the SQL figures are the vectors' and the
page rows'; page text and its full-text index come on top for every tier alike.

    python -m bench.tiers ../shared/data/cranfield ../shared/data/scifact:1000 \\
        --cache /tmp/compact_vecs --json bench-tiers.json

``folder:N`` ranks a subset: every judged document, then the corpus in file order up to
N documents (bench/tier_vectors.py ``subset``), when encoding the whole is too slow.
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

from bench.tier_vectors import Encoded, encoded
from latestore import Page, PrecomputedVectors, Store, StoreConfig
from latestore.encoders.pooling import pool_tokens
from latestore.evaluation import metrics_for, overlap_at
from latestore.index.residual_codec import code_bytes
from latestore.store.footprint import directory_bytes, sqlite_bytes

TIERS: dict[str, dict[str, Any]] = {
    "reference": {"index": {"ivf_codec": "none"}},
    "float16": {},
    "int8": {"storage": {"vector_dtype": "int8"}},
    "pooled": {},  # float16 over pooled page vectors
    "compact": {"storage": {"tier": "compact"}},
    "compact-only": {"storage": {"tier": "compact-only"}},
}


def _ids(hits: list[Any]) -> list[str]:
    return [h.external_id for h in hits]


def _payload(db: Path) -> dict[str, int]:
    """Bytes of the vector, code and codebook blobs as SQL holds them."""
    con = sqlite3.connect(db)
    try:
        out = {}
        for table in ("ls_page_vectors", "ls_page_codes", "ls_codebooks"):
            (total,) = con.execute(f"SELECT coalesce(sum(length(data)), 0) FROM {table}").fetchone()
            out[table] = int(total)
        return out
    finally:
        con.close()


def build(tier: str, data: Encoded, folder: Path) -> tuple[Path, float]:
    path = folder / f"{tier}.db"
    config = StoreConfig.model_validate(TIERS[tier])
    pooled = tier == "pooled"
    pages = [
        Page(vectors=pool_tokens(v, 2) if pooled else v, external_id=doc_id)
        for doc_id, v in zip(data.doc_ids, data.doc_vectors, strict=True)
    ]
    start = time.perf_counter()
    with Store.open(path, PrecomputedVectors(dim=data.doc_vectors[0].shape[1]), config=config) as s:
        s.add_pages(pages)  # one transaction: one codebook trained on the whole corpus
    return path, time.perf_counter() - start


def measure(
    tier: str, path: Path, data: Encoded, truth: dict[str, list[str]], build_s: float
) -> dict[str, Any]:
    queries = data.query_vectors
    latencies = []
    runs: dict[str, list[str]] = {}
    with Store.open(path) as store:
        store.search(queries[0], k=100)  # warm: lists built, codebooks loaded
        for qid, q in zip(data.query_ids, queries, strict=True):
            start = time.perf_counter()
            runs[qid] = _ids(store.search(q, k=100))
            latencies.append(time.perf_counter() - start)
        held_tokens = store.stats().tokens
        index_info = store.stats().index
    tokens = sum(len(v) for v in data.doc_vectors)
    dim = data.doc_vectors[0].shape[1]
    metrics = metrics_for(runs, data.data.qrels)
    sql = sqlite_bytes(path) or 0
    derived = directory_bytes(path.with_name(path.name + ".index")) or 0
    payload = _payload(path)
    row: dict[str, Any] = {
        "tier": tier,
        "ndcg10": metrics.ndcg10,
        "recall100": metrics.recall100,
        "overlap10": float(np.mean([overlap_at(runs[q], truth[q], 10) for q in runs])),
        "p50_ms": float(np.percentile(latencies, 50) * 1e3),
        "build_s": build_s,
        "tokens": tokens,
        "tokens_held": held_tokens,
        "dim": dim,
        "index": index_info,
        # Per token of the unpooled corpus, so the tiers compare on the same text.
        "bytes_per_token": {
            "sql_file": sql / tokens,
            "derived_files": derived / tokens,
            "all_in": (sql + derived) / tokens,
            "vectors_in_sql": payload["ls_page_vectors"] / tokens,
            "codes_in_sql": payload["ls_page_codes"] / tokens,
            "codebooks_in_sql": payload["ls_codebooks"] / tokens,
        },
    }
    if tier.startswith("compact"):
        # The same store at 128 dims differs in the packed residual's width and in the
        # codebook (centroids and residual table are both dim wide); an estimate: the
        # page rows' SQLite slack differs too (bench/compact_bytes.py measures 128 dims).
        shrink = (code_bytes(dim, 2) - code_bytes(128, 2)) * tokens
        shrink += payload["ls_codebooks"] * (1 - 128 / dim)
        row["all_in_at_128_dims"] = (sql + derived - shrink) / tokens
    return row


def run(spec: str, cache: Path, tiers: list[str], n_queries: int | None = None) -> dict[str, Any]:
    """``spec``: a BEIR folder, or ``folder:N`` for its subset of N documents;
    ``n_queries``: only the first queries (in file order)."""
    name, _, limit = spec.partition(":")
    folder = Path(name)
    data = encoded(folder, cache, int(limit) if limit else None)
    label = folder.name + (f" ({len(data.doc_ids)} docs)" if limit else "")
    if n_queries is not None:
        data.query_ids = data.query_ids[:n_queries]
        data.query_vectors = data.query_vectors[:n_queries]
        label += f" (first {len(data.query_ids)} queries)"
    out: dict[str, Any] = {"corpus": label, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # The reference: float16 vectors, every page scored exactly (a flat store, so
        # no candidate index is trained for it).
        base_path, _ = build("reference", data, work)
        with Store.open(base_path) as store:
            exact = store.search_many(data.query_vectors, k=100, exhaustive=True)
        truth = {q: _ids(h) for q, h in zip(data.query_ids, exact, strict=True)}
        m = metrics_for(truth, data.data.qrels)
        out["float16_exhaustive"] = {"ndcg10": m.ndcg10, "recall100": m.recall100}
        for tier in tiers:
            path, build_s = build(tier, data, work)
            row = measure(tier, path, data, truth, build_s)
            print(json.dumps(row), flush=True)
            out["rows"].append(row)
    return out


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| corpus | tier | nDCG@10 | Δ vs fp16 exh. (pts) | recall@100 | overlap@10 | "
        "B/token all-in (SQL + derived) | of which vectors / codes in SQL | p50 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        base = res["float16_exhaustive"]
        lines.append(
            f"| {res['corpus']} | float16 exhaustive | {base['ndcg10']:.4f} | 0 | "
            f"{base['recall100']:.4f} | 1.000 | | | |"
        )
        for r in res["rows"]:
            b = r["bytes_per_token"]
            lines.append(
                f"| {res['corpus']} | {r['tier']} | {r['ndcg10']:.4f} | "
                f"{100 * (r['ndcg10'] - base['ndcg10']):+.2f} | {r['recall100']:.4f} | "
                f"{r['overlap10']:.3f} | {b['all_in']:.0f} ({b['sql_file']:.0f} + "
                f"{b['derived_files']:.0f}) | {b['vectors_in_sql']:.0f} / "
                f"{b['codes_in_sql']:.1f} | {r['p50_ms']:.0f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="BEIR folders; folder:N for a subset")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "lt-tiers")
    parser.add_argument("--tiers", default=",".join(t for t in TIERS if t != "reference"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--queries", type=int, help="only the first N queries")
    args = parser.parse_args()
    results = [run(f, args.cache, args.tiers.split(","), args.queries) for f in args.folders]
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
