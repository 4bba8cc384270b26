"""``latestore ingest --dry-run``: what a run would read, as what, without a store or a
model. Only file names and page counts are read (a PDF's page tree, a JSONL file's
lines), so it takes seconds on folders that would take hours to encode."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from latestore.ingest.pipeline import FileProblem, IngestOptions, discover
from latestore.ingest.selection import project_file_reason
from latestore.ingest.sources import estimate_pages, kind_of


@dataclass
class PlannedFile:
    """One file a run would open: ``kind`` is what it would be read as (``None``: a
    file named explicitly whose type is not supported, so the run would fail it)."""

    path: str
    kind: str | None
    pages: int
    note: str | None = None


@dataclass
class DryRun:
    files: list[PlannedFile] = field(default_factory=list)
    missing: list[FileProblem] = field(default_factory=list)
    files_ignored: int = 0
    files_excluded: int = 0
    folders_not_entered: int = 0

    @property
    def pages(self) -> int:
        return sum(f.pages for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"pages": self.pages}


def dry_run(paths: Sequence[str | Path], options: IngestOptions) -> DryRun:
    """The files ``Ingestor.run(paths)`` would read with ``options``, each with its type,
    an estimate of its pages (text files: at most ``chunk_chars`` characters a page) and
    a note when it looks like a project's own file rather than a document."""
    found = discover(paths, options.recursive, options.include, options.exclude)
    planned = []
    for path in found.files:
        kind = kind_of(path)
        note = project_file_reason(path, kind)
        if kind is None:
            note = f"unsupported file type {path.suffix or '(no extension)'!r}: would fail"
        pages = estimate_pages(path, options.chunk_chars) if kind is not None else 0
        planned.append(PlannedFile(str(path), kind, pages, note))
    return DryRun(
        files=planned,
        missing=found.missing,
        files_ignored=found.ignored,
        files_excluded=found.excluded,
        folders_not_entered=found.folders_not_entered,
    )
