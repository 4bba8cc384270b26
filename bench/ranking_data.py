"""Collections for the ranking-quality benchmark, and their encoded vectors cached on disk.

Each collection is encoded once with the default MiniLM encoder, windows on, and every
window's vectors are kept whole (overlap tokens included, with a mask of the tokens the
windowed encoder keeps). From that one cache the benchmark derives, without running
the model again:

* the truncated page (the first window, every position: what ``windows=False`` stores),
* the windowed page (the kept tokens of every window: what ``windows=True`` stores),
* per-window scoring (each window on its own).

    python -m bench.ranking_data /work/wt/rank-cache cranfield cisi pdfs scifact

Collections: the BEIR-format folders under ``/work/shared/data`` (SciFact, Cranfield,
CISI) and ``pdfs``, the pages of the shared PDFs with the judgements kept in
``tests/data/pdf_pages_qrels`` (see its README).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(os.environ.get("LATESTORE_SHARED_DATA", "/work/shared/data"))
PDF_QRELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "pdf_pages_qrels"
CRANFIELD_GAINS = {1.0: 4.0, 2.0: 3.0, 3.0: 2.0, 4.0: 1.0}


@dataclass
class Collection:
    name: str
    ids: list[str]  # page ids, as the qrels name them
    texts: list[str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, float]]


def pdf_pages(folder: Path) -> tuple[list[str], list[str]]:
    """Every page of every PDF in ``folder`` as ``file.pdf#N`` (N from 1) and its text,
    extracted as ``latestore ingest`` does (pypdfium2, newlines normalised, stripped)."""
    import pypdfium2 as pdfium

    ids: list[str] = []
    texts: list[str] = []
    for path in sorted(folder.glob("*.pdf")):
        document = pdfium.PdfDocument(path)
        try:
            for index in range(len(document)):
                page = document[index]
                textpage = page.get_textpage()
                text = textpage.get_text_range()
                textpage.close()
                page.close()
                ids.append(f"{path.name}#{index + 1}")
                texts.append(text.replace("\r\n", "\n").replace("\r", "\n").strip() or "(empty)")
        finally:
            document.close()
    return ids, texts


def load(name: str) -> Collection:
    from latestore.evaluation import beir_pages, load_beir

    if name == "pdfs":
        ids, texts = pdf_pages(DATA / "pdfs")
        qrels_folder = PDF_QRELS
        queries = {
            str(q["id"]): str(q["text"])
            for q in map(json.loads, (qrels_folder / "queries.jsonl").read_text().splitlines())
        }
        qrels: dict[str, dict[str, float]] = {}
        for line in (qrels_folder / "qrels.tsv").read_text().splitlines()[1:]:
            qid, page, score = line.split("\t")
            qrels.setdefault(qid, {})[page] = float(score)
        return Collection(name, ids, texts, queries, qrels)
    if name == "scifact-subset":
        return scifact_subset()
    gain = (lambda s: CRANFIELD_GAINS.get(s, 0.0)) if name == "cranfield" else None
    data = load_beir(DATA / name, gain)
    pages = beir_pages(data.corpus)
    return Collection(
        name,
        [str(p.external_id) for p in pages],
        [str(p.text) for p in pages],
        data.queries,
        data.qrels,
    )


SUBSET_DOCS = 1500
SUBSET_TRAIN_QUERIES = 200


def scifact_subset() -> Collection:
    """SciFact on a 1,500-document subset (the full 5,183 take too long to encode on the
    shared 2-core machine): every document judged for the 300 test queries and for the
    first 200 training queries, the rest drawn at random (seed 0) from the others.
    Queries: the 300 test queries; ``train:<id>`` the 200 training ones (for tuning)."""
    from latestore.evaluation import beir_pages, load_beir

    test = load_beir(DATA / "scifact")
    train_queries = {
        str(q["id"]): str(q["text"])
        for q in map(json.loads, (DATA / "scifact/train/queries.jsonl").read_text().splitlines())
        if q
    }
    train_qrels: dict[str, dict[str, float]] = {}
    for line in (DATA / "scifact/train/qrels.tsv").read_text().splitlines()[1:]:
        qid, doc, score = line.split("\t")[:3]
        if float(score) > 0:
            train_qrels.setdefault(qid, {})[doc] = float(score)
    picked_train = [q for q in train_queries if q in train_qrels][:SUBSET_TRAIN_QUERIES]
    judged = {d for r in test.qrels.values() for d in r}
    judged |= {d for q in picked_train for d in train_qrels[q]}
    others = sorted(str(d["id"]) for d in test.corpus if str(d["id"]) not in judged)
    rng = np.random.default_rng(0)
    extra = rng.choice(others, size=max(0, SUBSET_DOCS - len(judged)), replace=False)
    keep = judged | set(extra.tolist())
    pages = beir_pages([d for d in test.corpus if str(d["id"]) in keep])
    queries = dict(test.queries)
    qrels = dict(test.qrels)
    for q in picked_train:
        queries[f"train:{q}"] = train_queries[q]
        qrels[f"train:{q}"] = train_qrels[q]
    return Collection(
        "scifact-subset",
        [str(p.external_id) for p in pages],
        [str(p.text) for p in pages],
        queries,
        qrels,
    )


def encode(collection: Collection, out: Path) -> None:
    """Encode pages (every window whole) and queries into ``out`` (a folder)."""
    from latestore.encoders.text.minilm import MiniLMEncoder
    from latestore.encoders.windows import encode_windows, text_token_ids, window_inputs

    encoder = MiniLMEncoder(windows=True)
    settings = encoder.windowing
    ids = text_token_ids(encoder.tokenizer, collection.texts, settings.max_page_tokens)
    own: list[list[bool]] = []

    def whole(window_ids: list[int], own_start: int, own_end: int) -> tuple[list[int], list[bool]]:
        model_ids, keep = encoder._window(window_ids, own_start, own_end)
        own.append(keep)
        return model_ids, [True] * len(model_ids)

    inputs, counts = window_inputs(ids, encoder._span, settings, whole)
    start = time.perf_counter()
    # One "page" per window: every window's vectors come back whole, in input order.
    per_window = encode_windows(
        [replace(w, page=i) for i, w in enumerate(inputs)],
        len(inputs),
        forward=encoder._forward,
        pad_id=encoder._pad_id,
        batch_size=32,
        device=encoder.device,
        dim=encoder.dim,
    )
    seconds = time.perf_counter() - start
    lengths = np.array([len(v) for v in per_window], dtype=np.int64)
    queries = list(collection.queries)
    query_vectors = encoder.encode_queries([collection.queries[q] for q in queries])
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "vectors.npy", np.concatenate(per_window).astype(np.float16))
    np.save(out / "own.npy", np.concatenate([np.array(k, dtype=bool) for k in own]))
    np.save(out / "window_lengths.npy", lengths)
    np.save(out / "window_pages.npy", np.array([w.page for w in inputs], dtype=np.int64))
    np.save(out / "query_vectors.npy", np.concatenate(query_vectors).astype(np.float32))
    np.save(out / "query_lengths.npy", np.array([len(q) for q in query_vectors], dtype=np.int64))
    meta: dict[str, Any] = {
        "collection": collection.name,
        "pages": len(collection.ids),
        "windows": len(inputs),
        "queries": queries,
        "stride": settings.stride,
        "span": encoder._span,
        "fingerprint_windowed": encoder.fingerprint,
        "tokens_dropped": int(sum(d for _, d in counts)),
        "encode_seconds": round(seconds, 1),
        "torch_threads": __import__("torch").get_num_threads(),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1))


@dataclass
class Cached:
    """A collection's cached vectors, split per window."""

    collection: Collection
    windows: list[np.ndarray]  # float32 (n, dim) per window, every position
    own: list[np.ndarray]  # bool per window position: kept by the windowed encoder
    window_pages: np.ndarray
    queries: list[str]
    query_vectors: list[np.ndarray]

    def page_windows(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in self.collection.ids]
        for w, page in enumerate(self.window_pages.tolist()):
            out[page].append(w)
        return out


def window_layout(collection: Collection) -> tuple[np.ndarray, np.ndarray]:
    """Each window's length (model positions) and page, as the windowed MiniLM cuts
    ``collection``'s pages: from the tokenizer alone, without the model."""
    from transformers import AutoTokenizer

    from latestore.encoders.text.minilm import bundled_model_dir
    from latestore.encoders.windows import (
        WindowSettings,
        special_template,
        text_token_ids,
        window_inputs,
    )

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_dir()))
    prefix, suffix = special_template(tokenizer)
    span = 256 - len(prefix) - len(suffix)
    settings = WindowSettings().resolved(span)
    ids = text_token_ids(tokenizer, collection.texts, settings.max_page_tokens)

    def build(window_ids: list[int], own_start: int, own_end: int) -> tuple[list[int], list[bool]]:
        model_ids = [*prefix, *window_ids, *suffix]
        return model_ids, [True] * len(model_ids)

    inputs, _ = window_inputs(ids, span, settings, build)
    return (
        np.array([len(w.ids) for w in inputs], dtype=np.int64),
        np.array([w.page for w in inputs], dtype=np.int64),
    )


def read(name: str, cache: Path) -> Cached:
    folder = cache / name
    meta = json.loads((folder / "meta.json").read_text())
    vectors = np.load(folder / "vectors.npy").astype(np.float32)
    own = np.load(folder / "own.npy")
    lengths = np.load(folder / "window_lengths.npy")
    if len(lengths) != meta["windows"] or lengths.min() == 0:
        # Caches written before the per-window fix hold per-page lengths (the windows
        # of a page concatenated, in order): recover the windows from the tokenizer.
        lengths, pages = window_layout(load(name))
        assert lengths.sum() == len(vectors) == len(own), "cache does not match its layout"
        np.save(folder / "window_lengths.npy", lengths)
        np.save(folder / "window_pages.npy", pages)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    windows = [vectors[a:b] for a, b in itertools.pairwise(bounds)]
    owns = [own[a:b] for a, b in itertools.pairwise(bounds)]
    q = np.load(folder / "query_vectors.npy")
    qb = np.concatenate([[0], np.cumsum(np.load(folder / "query_lengths.npy"))])
    query_vectors = [q[a:b] for a, b in itertools.pairwise(qb)]
    return Cached(
        load(name),
        windows,
        owns,
        np.load(folder / "window_pages.npy"),
        meta["queries"],
        query_vectors,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    for name in args.names:
        if (args.cache / name / "meta.json").exists():
            print(f"{name}: cached")
            continue
        collection = load(name)
        start = time.perf_counter()
        encode(collection, args.cache / name)
        print(f"{name}: {len(collection.ids)} pages in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
