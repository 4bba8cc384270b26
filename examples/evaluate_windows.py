"""Truncated against windowed page encoding on BEIR-format collections.

For each collection, builds one store with pages truncated to the model length
(``windows=False``, latestore's behaviour before windows) and one with windows (the
default), then prints nDCG@10 and recall@100 for ``Store.search`` at default settings
and for exhaustive MaxSim, what truncation dropped, tokens per page and bytes per page
on disk (SQL database and index files).

    python examples/evaluate_windows.py ../shared/data/scifact ../shared/data/cranfield \\
        --dtype bfloat16 --out /tmp/windows.json

Cranfield's qrels codes are mapped to gain = 5 - code (1 = most relevant); SciFact's
are used as they are. ``--limit-docs`` uses only the first N documents.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from latestore import Store
from latestore.encoders.registry import load_encoder
from latestore.evaluation import beir_pages, evaluate_store, load_beir
from latestore.store.footprint import disk_footprint

CRANFIELD_GAINS = {1.0: 4.0, 2.0: 3.0, 3.0: 2.0, 4.0: 1.0}


def run(
    folder: Path, windows: bool, dtype: str, limit: int | None, scratch: Path
) -> dict[str, Any]:
    gain = (lambda s: CRANFIELD_GAINS.get(s, 0.0)) if folder.name == "cranfield" else None
    data = load_beir(folder, gain, limit)
    pages = beir_pages(data.corpus)
    db = scratch / f"{folder.name}-{'windows' if windows else 'truncated'}.db"
    encoder = load_encoder("minilm", dtype=dtype, windows=windows)
    start = time.perf_counter()
    with Store.open(db, encoder) as store:
        for begin in range(0, len(pages), 256):
            store.upsert_pages(pages[begin : begin + 256])
        build_s = time.perf_counter() - start
        report = evaluate_store(store, data, k=100)
        stats = store.stats()
        cut = store.encoding()
    size = disk_footprint(db)
    n = stats.pages
    return {
        "collection": folder.name,
        "encoding": "windowed" if windows else "truncated",
        "documents": n,
        "queries": len(data.queries),
        "build_seconds": round(build_s, 1),
        "ndcg10": round(report.default.ndcg10, 4),
        "recall100": round(report.default.recall100, 4),
        "ndcg10_exhaustive": round(report.exhaustive.ndcg10, 4),
        "recall100_exhaustive": round(report.exhaustive.recall100, 4),
        "overlap10": round(report.overlap10, 4),
        "search_p50_ms": round(report.latency_ms["search_p50"], 1),
        "pages_truncated": cut["pages_truncated"],
        "tokens_dropped": cut["tokens_dropped"],
        "text_tokens": cut["text_tokens"],
        "tokens_per_page": round(stats.tokens / n, 1),
        "sql_bytes_per_page": round(size["sql_bytes"] / n),
        "index_bytes_per_page": round(size["index_bytes"] / n),
        "total_bytes_per_page": round(size["total_bytes"] / n),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--dtype", default="float32", help="encoder precision")
    parser.add_argument("--limit-docs", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="latestore-windows-") as scratch:
        for folder in args.folders:
            for windows in (False, True):
                rows.append(run(folder, windows, args.dtype, args.limit_docs, Path(scratch)))
                print(json.dumps(rows[-1]), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
