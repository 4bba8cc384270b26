"""Offline ingestion of folders of PDFs, images, text and JSONL into a store.

See :mod:`latestore.ingest.pipeline` for the guarantees (idempotent, resumable,
per-file errors).
"""

if __name__ != "latestore.ingest":
    raise ImportError(f"import latestore.ingest, not {__name__!r}: see pyproject package-dir")

from latestore.ingest.pipeline import (
    Discovery,
    FileProblem,
    IngestOptions,
    Ingestor,
    IngestProgress,
    IngestReport,
    SkippedPage,
    discover,
    ingest_paths,
)

__all__ = [
    "Discovery",
    "FileProblem",
    "IngestOptions",
    "IngestProgress",
    "IngestReport",
    "Ingestor",
    "SkippedPage",
    "discover",
    "ingest_paths",
]
