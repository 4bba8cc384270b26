"""nDCG@10 of what ``latestore ingest`` + ``latestore search`` give on a BEIR folder.

Unlike ``latestore evaluate`` (which builds pages from the corpus itself), this goes
through the ingestion pipeline exactly as the CLI does: ``corpus.jsonl`` is ingested
as a JSONL file (one page per record, title and text joined), with the store's default
encoder unless told otherwise, and each query is a ``Store.search(text, k=100)`` at
default settings, as ``latestore search`` runs it. Record ids come back from the page
external ids (``<path>#id=<record id>``).

    python bench/ingest_quality.py ../shared/data/cranfield --windows on --out /tmp/c.json

``--windows default`` leaves the choice to the store (what a new ``latestore ingest``
does); ``on``/``off`` force it. Cranfield's qrels codes become gain = 5 - code.

On a busy machine: ``--store-dir`` keeps the stores (a re-run skips what is ingested,
as ``latestore ingest`` does); ``--judged-plus N`` ingests every document judged for
some query plus the first N others, so every query stays answerable on a subset (the
corpus written beside the store says which). Queries are encoded in one batch and
searched ``k=100`` one by one with ``Store.search`` on their vectors: the same ranking
as ``latestore search`` on the text, without encoding each query alone.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from latestore import Store
from latestore.evaluation import load_beir, metrics_for
from latestore.ingest import IngestOptions, Ingestor
from latestore.store.footprint import disk_footprint

CRANFIELD_GAINS = {1.0: 4.0, 2.0: 3.0, 3.0: 2.0, 4.0: 1.0}


def record_id(external_id: str | None) -> str:
    """``/abs/corpus.jsonl#id=123`` -> ``123``."""
    _, _, key = (external_id or "").rpartition("#")
    return key.removeprefix("id=")


def judged_subset(folder: Path, others: int, scratch: Path) -> Path:
    """corpus.jsonl restricted to every judged document plus the first ``others`` others."""
    with (folder / "qrels.tsv").open(encoding="utf-8") as handle:
        next(handle)
        judged = {line.split("\t")[1] for line in handle if line.count("\t") >= 2}
    kept: list[str] = []
    extra = 0
    with (folder / "corpus.jsonl").open(encoding="utf-8") as src:
        for line in src:
            doc_id = str(json.loads(line)["id"])
            if doc_id in judged:
                kept.append(line)
            elif extra < others:
                kept.append(line)
                extra += 1
    target = scratch / f"{folder.name}-judged-plus-{others}" / "corpus.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.write_text("".join(kept), encoding="utf-8")
    return target


def run(
    folder: Path, windows: str, limit: int | None, scratch: Path, judged_plus: int | None = None
) -> dict[str, Any]:
    gain = (lambda s: CRANFIELD_GAINS.get(s, 0.0)) if folder.name == "cranfield" else None
    data = load_beir(folder, gain, limit)
    corpus = folder / "corpus.jsonl"
    if judged_plus is not None:
        corpus = judged_subset(folder, judged_plus, scratch)
        kept_ids = {str(json.loads(line)["id"]) for line in corpus.open(encoding="utf-8")}
        data.corpus = [d for d in data.corpus if str(d["id"]) in kept_ids]
    if limit is not None:  # a documented subset: the first N records, as --limit-docs
        corpus = scratch / f"{folder.name}-corpus.jsonl"
        with (folder / "corpus.jsonl").open(encoding="utf-8") as src:
            corpus.write_text("".join(line for _, line in zip(range(limit), src, strict=False)))
        kept = {str(d["id"]) for d in data.corpus}
        data.qrels = {
            q: judged for q, judged in data.qrels.items() if kept & set(judged)
        }  # fmt: skip
        data.queries = {q: t for q, t in data.queries.items() if q in data.qrels}
    tag = f"-judged-plus-{judged_plus}" if judged_plus is not None else ""
    db = scratch / f"{folder.name}{tag}-{windows}.db"
    options = None if windows == "default" else {"windows": windows == "on"}
    start = time.perf_counter()
    with Store.open(db, encoder_options=options) as store:
        report = Ingestor(store, IngestOptions(batch_size=64)).run([corpus])
        ingest_s = time.perf_counter() - start
        runs: dict[str, list[str]] = {}
        start = time.perf_counter()
        qids = list(data.queries)
        vectors = store.encode_queries([data.queries[q] for q in qids])
        for qid, vec in zip(qids, vectors, strict=True):
            runs[qid] = [record_id(h.external_id) for h in store.search(vec, k=100)]
        search_s = time.perf_counter() - start
        metrics = metrics_for(runs, data.qrels)
        stats = store.stats()
        cut = store.encoding()
    size = disk_footprint(db)
    n = stats.pages
    return {
        "collection": folder.name,
        "windows": windows,
        "page_windows": cut["windowing"],
        "pages": n,
        "subset": (
            f"every judged document + the first {judged_plus} others"
            if judged_plus is not None
            else (f"first {limit} documents" if limit else "all")
        ),
        "queries": len(data.queries),
        "ingest_seconds": round(ingest_s, 1),
        "search_seconds": round(search_s, 1),
        "ndcg10": round(metrics.ndcg10, 4),
        "recall100": round(metrics.recall100, 4),
        "pages_truncated": cut["pages_truncated"],
        "tokens_dropped": cut["tokens_dropped"],
        "text_tokens": cut["text_tokens"],
        "pages_written_this_run": report.pages_written,
        "tokens_per_page": round(stats.tokens / n, 1),
        "total_bytes_per_page": round(size["total_bytes"] / n),
        "sql_bytes_per_page": round(size["sql_bytes"] / n),
        "index_bytes_per_page": round(size["index_bytes"] / n),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--windows", choices=("default", "on", "off"), default="default")
    parser.add_argument("--limit-docs", type=int, default=None)
    parser.add_argument("--judged-plus", type=int, default=None)
    parser.add_argument("--store-dir", type=Path, default=None, help="keep the stores here")
    parser.add_argument("--out", type=Path, default=None, help="append the rows as JSON lines")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="latestore-ingest-quality-") as temporary:
        scratch = args.store_dir or Path(temporary)
        scratch.mkdir(parents=True, exist_ok=True)
        for folder in args.folders:
            row = run(folder, args.windows, args.limit_docs, scratch, args.judged_plus)
            print(json.dumps(row), flush=True)
            if args.out is not None:
                with args.out.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
