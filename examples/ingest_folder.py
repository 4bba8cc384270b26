"""Offline ingestion of a folder with the Python API (what `latestore ingest` does).

Safe to re-run and to kill: pages already stored are skipped, a changed file replaces
its pages, and every batch is one transaction. Usage::

    python examples/ingest_folder.py DOCS_DIR [--store pages.db] [--encoder minilm] [--dpi 150]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from latestore import Store
from latestore.ingest import IngestOptions, ingest_paths


class PrintProgress:
    """The smallest IngestProgress: a line every 50 pages."""

    def __init__(self) -> None:
        self.done = self.total = 0

    def start(self, files: int, pages: int) -> None:
        self.total = pages
        print(f"{files} files, about {pages} pages")

    def advance(self, pages: int) -> None:
        before, self.done = self.done, self.done + pages
        if before // 50 != self.done // 50:
            print(f"  {self.done}/{self.total} pages")

    def file_done(self, path: Path, status: str) -> None:
        if status == "failed":
            print(f"  could not read {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--store", default="pages.db")
    parser.add_argument("--encoder", default=None, help="default: the store's, or minilm")
    parser.add_argument("--dpi", type=int, default=150)
    args = parser.parse_args()

    options = IngestOptions(dpi=args.dpi, recursive=True, metadata={"collection": args.folder.name})
    report = ingest_paths(
        args.store, [args.folder], options, encoder=args.encoder, progress=PrintProgress()
    )
    print(
        f"added {report.pages_added}, updated {report.pages_updated}, unchanged "
        f"{report.pages_unchanged}, deleted {report.pages_deleted} pages in {report.seconds:.1f} s"
    )
    for page in report.skipped:
        print(f"skipped {page.path} page {page.page}: {page.reason}")
    for problem in report.failed:
        print(f"failed {problem.path}: {problem.reason}", file=sys.stderr)

    with Store.open(args.store) as store:
        for hit in store.search("summary of the main findings", k=3):
            print(f"{hit.score:7.3f}  {hit.metadata.get('file_name')} p.{hit.page_number}")
    return report.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
