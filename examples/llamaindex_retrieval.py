"""Retrieve with LlamaIndex over a latestore store built from a small corpus.

Stores the first ``--limit`` SciFact abstracts (or a few inline sentences when the
shared data is absent) as pages, then queries them through LlamaIndex's
``retrieve``/``aretrieve`` with native ``MetadataFilters``. Needs
``pip install 'latestore[llamaindex]'``. Usage::

    python examples/llamaindex_retrieval.py [--limit 200] [--store build/llamaindex.db]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llama_index.core.schema import NodeWithScore
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

from latestore import Page, Store
from latestore.integrations.llamaindex import LatestoreRetriever

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl"
FALLBACK = [
    "Vitamin D deficiency is associated with a higher risk of respiratory infections.",
    "Regular aerobic exercise lowers resting blood pressure in adults with hypertension.",
    "Antibiotic resistance spreads between bacteria through horizontal gene transfer.",
    "Sleep deprivation impairs the consolidation of new memories in the hippocampus.",
    "Statins reduce LDL cholesterol by inhibiting HMG-CoA reductase in the liver.",
]


def load_pages(limit: int) -> list[Page]:
    if not SCIFACT.exists():
        rows = [{"id": str(i), "title": text, "text": ""} for i, text in enumerate(FALLBACK)]
    else:
        with SCIFACT.open(encoding="utf-8") as lines:
            rows = [json.loads(line) for line, _ in zip(lines, range(limit), strict=False)]
    return [
        Page(
            text=f"{row['title']}\n{row['text']}".strip(),
            external_id=f"scifact-{row['id']}",
            document_id="scifact",
            # a made-up shelf number, so there is something numeric to filter on
            metadata={"title": row["title"], "shelf": i % 10},
        )
        for i, row in enumerate(rows)
    ]


def show(query: str, nodes: list[NodeWithScore]) -> None:
    print(f"\n{query}")
    for hit in nodes:
        meta = hit.node.metadata
        print(f"  {hit.score or 0.0:7.3f}  shelf {meta['shelf']}  {meta['title'][:70]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=200, help="SciFact documents to index")
    parser.add_argument("--store", type=Path, default=ROOT / "build" / "llamaindex.db")
    args = parser.parse_args()
    args.store.parent.mkdir(parents=True, exist_ok=True)

    with Store.open(args.store) as store:
        store.upsert_pages(load_pages(args.limit))  # unchanged pages are not re-encoded
        print(f"the store holds {store.count()} pages")

        query = "How do bacteria become resistant to antibiotics?"
        show(query, LatestoreRetriever(store, similarity_top_k=3).retrieve(query))

        low_shelves = MetadataFilters(
            filters=[MetadataFilter(key="shelf", value=3, operator=FilterOperator.LT)]
        )
        scoped = LatestoreRetriever(store, similarity_top_k=3, filters=low_shelves)
        show(query + "  [shelf < 3]", scoped.retrieve(query))
        vitamin = "Does vitamin D affect the risk of infection?"
        show(vitamin + "  [shelf < 3, async]", asyncio.run(scoped.aretrieve(vitamin)))


if __name__ == "__main__":
    main()
