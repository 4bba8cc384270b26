"""Retrieve with LangChain over a latestore store built from a small corpus.

Indexes the first ``--limit`` SciFact abstracts (or a few inline sentences when the
shared data is absent) as LangChain Documents, then queries them through
``LatestoreRetriever``: ``invoke`` with a per-call ``k`` and filter, ``batch`` and
``ainvoke``. Needs ``pip install 'latestore[langchain]'``. Usage::

    python examples/langchain_retrieval.py [--limit 200] [--store build/langchain.db]

Re-running is quick: unchanged documents are recognised by id and not re-encoded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from langchain_core.documents import Document

from latestore import Store
from latestore.integrations.langchain import LatestoreRetriever, add_documents

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl"
FALLBACK = [
    "Vitamin D deficiency is associated with a higher risk of respiratory infections.",
    "Regular aerobic exercise lowers resting blood pressure in adults with hypertension.",
    "Antibiotic resistance spreads between bacteria through horizontal gene transfer.",
    "Sleep deprivation impairs the consolidation of new memories in the hippocampus.",
    "Statins reduce LDL cholesterol by inhibiting HMG-CoA reductase in the liver.",
]


def load_documents(limit: int) -> list[Document]:
    if not SCIFACT.exists():
        return [
            Document(page_content=text, id=f"fallback-{i}", metadata={"source": "inline"})
            for i, text in enumerate(FALLBACK)
        ]
    docs = []
    with SCIFACT.open(encoding="utf-8") as lines:
        for line, _ in zip(lines, range(limit), strict=False):
            row = json.loads(line)
            docs.append(
                Document(
                    page_content=f"{row['title']}\n{row['text']}",
                    id=f"scifact-{row['id']}",
                    metadata={"source": "scifact", "title": row["title"], "corpus_id": row["id"]},
                )
            )
    return docs


def show(query: str, docs: list[Document]) -> None:
    print(f"\n{query}")
    for doc in docs:
        title = doc.metadata.get("title") or doc.page_content[:70]
        print(f"  {doc.metadata['score']:7.3f}  {doc.id:<16} {title[:70]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=200, help="SciFact documents to index")
    parser.add_argument("--store", type=Path, default=ROOT / "build" / "langchain.db")
    args = parser.parse_args()
    args.store.parent.mkdir(parents=True, exist_ok=True)

    with Store.open(args.store) as store:
        ids = add_documents(store, load_documents(args.limit))
        print(f"{len(ids)} documents indexed; the store holds {store.count()} pages")
        retriever = LatestoreRetriever(store=store, k=3)

        query = "Does vitamin D affect the risk of infection?"
        show(query, retriever.invoke(query))
        # k and filter per call (ANDed with the retriever's own filter, if it has one):
        # here, search only the first 50 documents, as if they were all a user may see
        visible = {"external_id": {"$in": ids[:50]}}
        show(query + "  [k=2, 50 documents]", retriever.invoke(query, k=2, filter=visible))

        queries = ["How do bacteria become resistant to antibiotics?", "sleep and memory"]
        for q, docs in zip(queries, retriever.batch(queries), strict=True):
            show(q, docs)
        show("cholesterol drugs (async)", asyncio.run(retriever.ainvoke("cholesterol drugs")))


if __name__ == "__main__":
    main()
