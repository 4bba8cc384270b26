"""SciFact with the default encoder: latency/overlap sweep, ingestion split, compression."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.search_bench import SWEEP, sweep_store
from latestore import MemoryConfig, Page, PrecomputedVectors, StorageConfig, Store, StoreConfig
from latestore.encoders import PageContent
from latestore.encoders.pooling import pool_tokens
from latestore.evaluation import beir_pages, load_beir, metrics_for, overlap_at, ranked_ids
from latestore.store.footprint import disk_footprint


def quality(store: Store, qids: list[str], vectors: list[Any], qrels: Any) -> dict[str, float]:
    approx = {
        q: ranked_ids(h) for q, h in zip(qids, store.search_many(vectors, k=100), strict=True)
    }
    exact_hits = store.search_many(vectors, k=100, exhaustive=True)
    exact = {q: ranked_ids(h) for q, h in zip(qids, exact_hits, strict=True)}
    return {
        "ndcg10": metrics_for(approx, qrels).ndcg10,
        "ndcg10_exhaustive": metrics_for(exact, qrels).ndcg10,
        "overlap10": float(np.mean([overlap_at(approx[q], exact[q], 10) for q in qids])),
    }


def run(data_dir: Path, store_path: Path, compression: bool = True) -> dict[str, Any]:
    if not store_path.exists():
        return {"skipped": f"{store_path} missing: run `make eval` first to encode SciFact"}
    data = load_beir(data_dir)
    out: dict[str, Any] = {}
    with Store.open(store_path) as store:
        qids = list(data.queries)
        vectors = store.encoder.encode_queries([data.queries[q] for q in qids])
        out["sweep"] = [dict(r, memory="float16") for r in sweep_store(store, vectors, SWEEP)]
        out["fp16"] = quality(store, qids, vectors, data.qrels)
        tokens = store.stats().tokens
        out["fp16"]["bytes_per_token"] = {
            k: v / tokens for k, v in disk_footprint(store_path).items()
        }
        # Ingestion split on 300 documents: encoder time vs store (SQL + index) time.
        sample = beir_pages(data.corpus[:300])
        start = time.perf_counter()
        encoded = store.encoder.encode_pages([PageContent(text=p.text) for p in sample])
        encode_s = time.perf_counter() - start
        cache = store._sync.index.vectors
        page_ids = [int(p) for p in cache.page_ids()]
        external = {p.page_id: p.external_id or str(p.page_id) for p in store.get(page_ids)}
        page_vectors = {external[p]: cache.get(p) for p in page_ids}
    with Store.open(
        store_path, config=StoreConfig(memory=MemoryConfig(memory_dtype="float32"))
    ) as store:
        out["sweep"] += [dict(r, memory="float32") for r in sweep_store(store, vectors, SWEEP)]
    with tempfile.TemporaryDirectory() as tmp:
        with Store.open(Path(tmp) / "ingest.db", PrecomputedVectors(dim=384)) as scratch:
            start = time.perf_counter()
            scratch.add_pages([Page(vectors=v, external_id=str(i)) for i, v in enumerate(encoded)])
            store_s = time.perf_counter() - start
        n_tok = sum(len(v) for v in encoded)
        out["ingestion"] = {
            "pages": len(sample),
            "tokens": n_tok,
            "encoder_pages_per_s": len(sample) / encode_s,
            "store_pages_per_s": len(sample) / store_s,
            "encoder_share": encode_s / (encode_s + store_s),
        }
        out["compression"] = [dict(out["fp16"], variant="fp16 (default)")]
        if not compression:
            return out
        out["compression"].append(_variant(Path(tmp), "int8", 1, page_vectors, data, qids, vectors))
        for factor in (2, 3):
            out["compression"].append(
                _variant(Path(tmp), "float16", factor, page_vectors, data, qids, vectors)
            )
        out["compression"].append(_variant(Path(tmp), "int8", 2, page_vectors, data, qids, vectors))
    return out


def _variant(
    tmp: Path,
    dtype: str,
    factor: int,
    page_vectors: dict[str, Any],
    data: Any,
    qids: list[str],
    vectors: list[Any],
) -> dict[str, Any]:
    """The stored vectors re-stored as ``dtype`` after token pooling by ``factor``."""
    name = f"{dtype}-pool{factor}"
    path = tmp / f"{name}.db"

    def pooled(v: Any) -> Any:
        return pool_tokens(np.asarray(v, np.float32), factor) if factor > 1 else v

    pages = [Page(vectors=pooled(v), external_id=ext) for ext, v in page_vectors.items()]
    config = StoreConfig(storage=StorageConfig(vector_dtype=dtype))  # type: ignore[arg-type]
    with Store.open(path, PrecomputedVectors(dim=384, name=name), config=config) as store:
        store.add_pages(pages)
        result = quality(store, qids, vectors, data.qrels)
        tokens = store.stats().tokens
    original = sum(len(v) for v in page_vectors.values())
    result["bytes_per_token_of_unpooled"] = {
        k: v / original for k, v in disk_footprint(path).items()
    }
    label = "int8" if dtype == "int8" else "fp16"
    result["variant"] = label + (f" + token pooling x{factor}" if factor > 1 else "")
    result["tokens"] = tokens
    return result
