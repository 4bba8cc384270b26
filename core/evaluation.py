"""Retrieval quality on BEIR-format folders, and how close approximate search is to exact.

A BEIR folder holds ``corpus.jsonl`` (id, title, text), ``queries.jsonl`` (id, text)
and ``qrels.tsv`` (query-id, corpus-id, score).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latestore.models import Page, SearchHit

Qrels = dict[str, dict[str, float]]


@dataclass
class BeirData:
    """A BEIR folder as read. ``queries_dropped`` counts the judged queries left out
    because no document judged relevant to them is in ``corpus`` (``limit_docs``)."""

    corpus: list[dict[str, str]]
    queries: dict[str, str]
    qrels: Qrels
    queries_dropped: int = 0


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def load_beir(
    folder: Path, gain: Callable[[float], float] | None = None, limit_docs: int | None = None
) -> BeirData:
    """Read a BEIR folder. ``gain`` maps a qrels score to a relevance gain (0 = not relevant).

    With ``limit_docs``, only the first documents are kept, and with them only the
    judgements of those documents and the queries left with one: a query whose relevant
    documents are all outside the subset cannot be answered, and would count as a miss.
    """
    corpus = list(read_jsonl(folder / "corpus.jsonl"))
    if limit_docs is not None:
        corpus = corpus[:limit_docs]
    queries = {str(q["id"]): str(q["text"]) for q in read_jsonl(folder / "queries.jsonl")}
    qrels: Qrels = {}
    with (folder / "qrels.tsv").open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                continue
            score = float(parts[2])
            value = gain(score) if gain is not None else score
            if value > 0:
                qrels.setdefault(parts[0], {})[parts[1]] = value
    queries = {qid: text for qid, text in queries.items() if qid in qrels}
    dropped = 0
    if limit_docs is not None:
        kept = {str(doc["id"]) for doc in corpus}
        qrels = {
            qid: subset
            for qid, judged in qrels.items()
            if (subset := {doc: g for doc, g in judged.items() if doc in kept})
        }
        answerable = {qid: text for qid, text in queries.items() if qid in qrels}
        dropped = len(queries) - len(answerable)
        queries = answerable
    return BeirData(corpus=corpus, queries=queries, qrels=qrels, queries_dropped=dropped)


def beir_pages(corpus: list[dict[str, str]]) -> list[Page]:
    return [
        Page(
            text=" ".join(p for p in (doc.get("title", ""), doc.get("text", "")) if p).strip()
            or "(empty)",
            external_id=str(doc["id"]),
            document_id=str(doc["id"]),
        )
        for doc in corpus
    ]


def ndcg_at(ranked: list[str], relevant: Mapping[str, float], k: int) -> float:
    dcg = sum(relevant.get(doc, 0.0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: list[str], relevant: Mapping[str, float], k: int) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant) if relevant else 0.0


def mrr_at(ranked: list[str], relevant: Mapping[str, float], k: int) -> float:
    for i, doc in enumerate(ranked[:k]):
        if doc in relevant:
            return 1.0 / (i + 1)
    return 0.0


def overlap_at(a: list[str], b: list[str], k: int) -> float:
    """|top-k(a) ∩ top-k(b)| / k: 1.0 when approximate search equals exhaustive."""
    top = min(k, len(b))
    return len(set(a[:k]) & set(b[:k])) / top if top else 1.0


@dataclass
class RunMetrics:
    ndcg10: float
    recall10: float
    recall100: float
    mrr10: float


@dataclass
class EvaluationReport:
    default: RunMetrics
    exhaustive: RunMetrics
    overlap10: float
    latency_ms: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str, str]]:
        d, e = self.default, self.exhaustive
        return [
            ("nDCG@10", f"{d.ndcg10:.4f}", f"{e.ndcg10:.4f}"),
            ("recall@10", f"{d.recall10:.4f}", f"{e.recall10:.4f}"),
            ("recall@100", f"{d.recall100:.4f}", f"{e.recall100:.4f}"),
            ("MRR@10", f"{d.mrr10:.4f}", f"{e.mrr10:.4f}"),
        ]


def metrics_for(runs: dict[str, list[str]], qrels: Qrels) -> RunMetrics:
    qids = [q for q in runs if q in qrels]

    def mean(fn: Callable[[list[str], Mapping[str, float], int], float], k: int) -> float:
        return float(np.mean([fn(runs[q], qrels[q], k) for q in qids])) if qids else 0.0

    return RunMetrics(
        ndcg10=mean(ndcg_at, 10),
        recall10=mean(recall_at, 10),
        recall100=mean(recall_at, 100),
        mrr10=mean(mrr_at, 10),
    )


def ranked_ids(hits: list[SearchHit]) -> list[str]:
    return [h.external_id or str(h.page_id) for h in hits]


def percentile_ms(samples: list[float], pct: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000.0, pct)) if samples else 0.0


def evaluate_store(
    store: Any,
    data: BeirData,
    k: int = 100,
    mode: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    **overrides: Any,
) -> EvaluationReport:
    """Score ``store`` (already filled with ``data.corpus``) on ``data.queries``.

    Queries are encoded once; the approximate and the exhaustive runs rank the same
    query vectors, so their difference is the index's alone. Latency is measured per
    query, for text-in (encoder included) and vectors-in (with the query's words for
    the lexical side of ``mode``). ``on_progress(done, total)`` is called as searches
    finish (total: every search this runs).
    """
    qids = list(data.queries)
    texts = [data.queries[q] for q in qids]
    vectors = store.encoder.encode_queries(texts)
    approx: dict[str, list[str]] = {}
    retrieval: list[float] = []
    overrides = dict(overrides, mode=mode)
    timed = texts[: min(len(texts), 100)]
    total = 2 * len(qids) + len(timed)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if on_progress is not None:
            on_progress(done, total)

    for qid, vec, text in zip(qids, vectors, texts, strict=True):
        start = time.perf_counter()
        hits = store.search(vec, k=k, lexical_text=text, **overrides)
        retrieval.append(time.perf_counter() - start)
        approx[qid] = ranked_ids(hits)
        advance(1)
    end_to_end: list[float] = []
    for text in timed:
        start = time.perf_counter()
        store.search(text, k=10, **overrides)
        end_to_end.append(time.perf_counter() - start)
        advance(1)
    exact_hits = store.search_many(vectors, k=k, exhaustive=True, mode=mode, lexical_text=texts)
    advance(len(qids))
    exact = {qid: ranked_ids(h) for qid, h in zip(qids, exact_hits, strict=True)}
    overlap = float(np.mean([overlap_at(approx[q], exact[q], 10) for q in qids])) if qids else 1.0
    return EvaluationReport(
        default=metrics_for(approx, data.qrels),
        exhaustive=metrics_for(exact, data.qrels),
        overlap10=overlap,
        latency_ms={
            "search_p50": percentile_ms(retrieval, 50),
            "search_p95": percentile_ms(retrieval, 95),
            "text_search_p50": percentile_ms(end_to_end, 50),
            "text_search_p95": percentile_ms(end_to_end, 95),
        },
    )
