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


def encoded(folder: Path, cache_dir: Path) -> Encoded:
    """The corpus and queries of ``folder`` as token vectors, encoded at most once."""
    data = load_data(folder)
    cache = cache_dir / f"{folder.name}-minilm.npz"
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
    for name in sys.argv[1:-1]:
        found = encoded(Path(name), out)
        print(name, len(found.doc_ids), sum(len(d) for d in found.doc_vectors), "tokens")
