"""Encode a BEIR folder once with the default MiniLM encoder and cache the vectors.

Used by bench/tiers.py so every storage tier ranks the very same vectors. The cache
is an ``.npz`` outside the repository (default: the system temp folder).

    python -m bench.tier_vectors ../shared/data/scifact /tmp/compact_vecs
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from latestore.encoders import PageContent, default_encoder
from latestore.evaluation import BeirData, beir_pages, load_beir

CRANFIELD_GAINS = {1.0: 4.0, 2.0: 3.0, 3.0: 2.0, 4.0: 1.0}


@dataclass
class Encoded:
    data: BeirData
    doc_ids: list[str]
    doc_vectors: list[npt.NDArray[np.float32]]
    query_ids: list[str]
    query_vectors: list[npt.NDArray[np.float32]]


def load_data(folder: Path) -> BeirData:
    # Cranfield's relevance codes run 1 (most) to 4 (least), -1 not relevant.
    gain = (lambda s: CRANFIELD_GAINS.get(s, 0.0)) if folder.name == "cranfield" else None
    return load_beir(folder, gain=gain)


def subset(data: BeirData, n_docs: int) -> BeirData:
    """Every judged document, then the corpus in file order up to ``n_docs`` documents:
    a smaller corpus with every answer in it (scores run higher than on the whole)."""
    judged = {d for rel in data.qrels.values() for d in rel}
    kept = [d for d in data.corpus if str(d["id"]) in judged]
    for doc in data.corpus:
        if len(kept) >= n_docs:
            break
        if str(doc["id"]) not in judged:
            kept.append(doc)
    return BeirData(corpus=kept, queries=data.queries, qrels=data.qrels)


def encoded(folder: Path, cache_dir: Path, n_docs: int | None = None) -> Encoded:
    """The corpus and queries of ``folder`` as token vectors, encoded at most once;
    ``n_docs``: a subset (see :func:`subset`)."""
    data = load_data(folder)
    if n_docs is not None and n_docs < len(data.corpus):
        data = subset(data, n_docs)
    name = folder.name if n_docs is None else f"{folder.name}-{len(data.corpus)}"
    cache = cache_dir / f"{name}-minilm.npz"
    if not cache.exists():
        encoder = default_encoder()
        pages = beir_pages(data.corpus)
        start = time.perf_counter()
        docs = encoder.encode_pages([PageContent(text=p.text) for p in pages])
        queries = encoder.encode_queries(list(data.queries.values()))
        print(f"{folder.name}: encoded in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        lengths = np.array([len(d) for d in docs])
        qlengths = np.array([len(q) for q in queries])
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache,
            doc_ids=np.array([p.external_id for p in pages]),
            doc_lengths=lengths,
            docs=np.concatenate(docs).astype(np.float32),
            query_ids=np.array(list(data.queries)),
            query_lengths=qlengths,
            queries=np.concatenate(queries).astype(np.float32),
        )
    held = np.load(cache)
    return Encoded(
        data,
        [str(x) for x in held["doc_ids"]],
        np.split(held["docs"], np.cumsum(held["doc_lengths"])[:-1]),
        [str(x) for x in held["query_ids"]],
        np.split(held["queries"], np.cumsum(held["query_lengths"])[:-1]),
    )


if __name__ == "__main__":
    out = Path(sys.argv[-1])
    limit = int(sys.argv[1]) if sys.argv[1].isdigit() else None
    for name in sys.argv[1 + (limit is not None) : -1]:
        found = encoded(Path(name), out, limit)
        print(name, len(found.doc_ids), sum(len(d) for d in found.doc_vectors), "tokens")
