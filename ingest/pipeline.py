"""Offline ingestion: folders of PDFs, images and text into a store, idempotently.

Every page gets a deterministic external id, ``"<absolute path>#page=N"`` (JSONL
records: ``#id=<record id>`` or ``#line=N``), and provenance metadata: ``source_path``,
``file_name``, ``file_type``, ``file_sha256``, ``page_sha256``, ``page_count`` and
``ingest_key`` (a digest of the file's bytes and the options that shape its pages).

* **Idempotent:** a page whose external id is stored with the same ``ingest_key`` is
  not read, rendered or encoded again.
* **Changed files** keep their page ids: pages are replaced in place, and pages the new
  version no longer has are deleted (before the new ones are written).
* **Resumable:** pages are written ``batch_size`` at a time, one ``Store.add_pages``
  call and so one SQL transaction per batch; after a crash the same call skips what
  was committed and writes the rest.
* **Per-file errors** are collected in the report; the other files go on.

Examples
--------
>>> from latestore.ingest import IngestOptions, ingest_paths
>>> report = ingest_paths("pages.db", ["reports/"], IngestOptions(recursive=True))  # doctest: +SKIP
>>> report.pages_added, [f.reason for f in report.failed]                          # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from latestore.encoders import Encoder, PageContent
from latestore.errors import InvalidInputError, LatestoreError
from latestore.ingest.selection import project_file_reason, selected
from latestore.ingest.sources import (
    NOT_A_FILE,
    PageDraft,
    SourceError,
    document_key,
    estimate_pages,
    iter_files,
    kind_of,
    open_source,
)
from latestore.models import Page, WrittenPages

if TYPE_CHECKING:
    from latestore.store import Store


# Bump when the way files become pages changes, so re-runs rebuild those pages.
INGEST_VERSION = 1
PROVENANCE_KEYS = frozenset(
    {
        "source_path",
        "file_name",
        "file_type",
        "file_sha256",
        "page_sha256",
        "page_count",
        "ingest_key",
        "dpi",
    }
)
# Errors that belong to the pages of one batch (bad input, a model that rejects a page),
# as opposed to the database or the machine, which must stop the run.
PAGE_ERRORS = (LatestoreError, ValueError, RuntimeError)


@dataclass(frozen=True)
class IngestOptions:
    """How files become pages.

    ``dpi`` is the PDF rendering resolution of the stored page image (0 stores no
    image); ``batch_size`` pages are written per transaction; ``chunk_chars`` bounds
    the pages of text and markdown files; ``metadata`` is added to every page.
    ``relative_to`` (a folder holding every file given) makes document ids, sources,
    ``source_path`` and the report's paths relative to it: the server's uploads are
    named by what the client sent, never by where the server keeps them.
    ``include``/``exclude`` are globs that choose among the files found in folders
    (see :mod:`latestore.ingest.selection`); a file named explicitly is always read.
    """

    dpi: int = 150
    batch_size: int = 32
    recursive: bool = False
    chunk_chars: int = 1500
    metadata: dict[str, Any] = field(default_factory=dict)
    relative_to: Path | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.dpi <= 1200:
            raise InvalidInputError(f"dpi must be between 0 and 1200, got {self.dpi}")
        if self.batch_size < 1:
            raise InvalidInputError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.chunk_chars < 100:
            raise InvalidInputError(f"chunk_chars must be at least 100, got {self.chunk_chars}")
        clash = sorted(PROVENANCE_KEYS & set(self.metadata))
        if clash:
            raise InvalidInputError(f"metadata keys {clash} are set by ingestion itself")
        Page(text="-", metadata=self.metadata)  # JSON-serialisable, sizes within limits


@dataclass
class FileProblem:
    path: str
    reason: str


@dataclass
class SkippedPage:
    path: str
    page: int
    reason: str


@dataclass
class IngestReport:
    """What one ingestion run did; ``exit_code`` is 1 when any file failed.

    ``files_skipped`` counts readable files none of whose pages the encoder can take
    (an image for a text-only encoder); their pages are listed in ``skipped``.
    ``files_ignored`` counts files of unsupported types found inside folders, and
    ``folders_not_entered`` the sub-folders passed over without ``recursive``.
    ``files_taken_as`` lists the files read, by the type they were read as, so that a
    README or a queries file picked up from a data folder does not pass unnoticed;
    ``project_files`` names those of them that look like a project's own files (path ->
    why), and ``files_excluded`` counts the files ``include``/``exclude`` left out.
    ``pages_truncated`` / ``tokens_dropped`` count the pages written in this run that
    the encoder could not read whole (past its ``max_page_tokens``, or past the model
    length with windows off) and the text tokens it left out.
    """

    files_seen: int = 0
    files_ingested: int = 0
    files_unchanged: int = 0
    files_skipped: int = 0
    files_ignored: int = 0
    files_excluded: int = 0
    folders_not_entered: int = 0
    pages_added: int = 0
    pages_updated: int = 0
    pages_unchanged: int = 0
    pages_deleted: int = 0
    pages_truncated: int = 0
    tokens_dropped: int = 0
    seconds: float = 0.0
    failed: list[FileProblem] = field(default_factory=list)
    skipped: list[SkippedPage] = field(default_factory=list)
    # file type (pdf, image, text, jsonl) -> the files read as that type, in order
    files_taken_as: dict[str, list[str]] = field(default_factory=dict)
    project_files: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    @property
    def pages_written(self) -> int:
        return self.pages_added + self.pages_updated

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["pages_per_second"] = (
            round(self.pages_written / self.seconds, 2) if self.seconds else 0.0
        )
        out["exit_code"] = self.exit_code
        return out


class IngestProgress(Protocol):
    """Receives progress events (the CLI draws a bar or prints log lines)."""

    def start(self, files: int, pages: int) -> None: ...

    def advance(self, pages: int) -> None: ...

    def file_done(self, path: Path, status: str) -> None: ...


@dataclass
class Discovery:
    files: list[Path]
    missing: list[FileProblem]
    ignored: int
    folders_not_entered: int = 0
    excluded: int = 0


def discover(
    paths: Iterable[str | Path],
    recursive: bool = False,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
) -> Discovery:
    """Files to ingest, in a stable order. Inside folders only supported types are taken
    (others are counted as ignored), and of those the ones ``include``/``exclude``
    select (others are counted as excluded); a file named explicitly is always tried."""
    files: list[Path] = []
    seen: set[Path] = set()
    missing: list[FileProblem] = []
    ignored = folders_not_entered = excluded = 0
    for given in paths:
        path = Path(given).expanduser()
        if not path.exists():
            missing.append(FileProblem(str(given), "no such file or directory"))
            continue
        if not path.is_dir() and not path.is_file():
            missing.append(FileProblem(str(given), NOT_A_FILE))
            continue
        if path.is_dir() and not recursive:
            folders_not_entered += sum(
                1 for entry in path.iterdir() if entry.is_dir() and not entry.name.startswith(".")
            )
        candidates = iter_files(path, recursive) if path.is_dir() else iter([path])
        for candidate in candidates:
            if path.is_dir() and kind_of(candidate) is None:
                ignored += 1
                continue
            if path.is_dir() and not selected(
                candidate, candidate.relative_to(path), include=include, exclude=exclude
            ):
                excluded += 1
                continue
            resolved = candidate.resolve()
            if resolved not in seen:
                seen.add(resolved)
                files.append(resolved)
    return Discovery(files, missing, ignored, folders_not_entered, excluded)


@dataclass
class _FileState:
    path: Path
    status: str = "pending"
    failed: bool = False


@dataclass
class _Abilities:
    """Which kinds of page the encoder can encode, with its reason when it cannot."""

    text_error: str | None
    image_error: str | None


def probe_encoder(encoder: Encoder) -> _Abilities:
    from PIL import Image

    def attempt(content: PageContent) -> str | None:
        try:
            encoder.encode_pages([content])
        except Exception as exc:  # any failure means this kind of page cannot be encoded
            return str(exc) or type(exc).__name__
        return None

    return _Abilities(
        text_error=attempt(PageContent(text="latestore encoder probe")),
        image_error=attempt(PageContent(image=Image.new("RGB", (64, 64), "white"))),
    )


def stored_pages_of(store: Store, document: str) -> dict[str, tuple[int, dict[str, Any]]]:
    """external id -> (page id, metadata) of a document's stored pages."""
    return {
        page.external_id: (page.page_id, page.metadata)
        for page in store.pages(document_id=document)
        if page.external_id is not None
    }


def count_cuts(store: Store, page_ids: list[int], report: IngestReport) -> None:
    """Add to ``report`` how many of ``page_ids`` encoding cut, and the tokens it dropped."""
    for page in store.get_many(page_ids):
        if page.tokens_dropped:
            report.pages_truncated += 1
            report.tokens_dropped += page.tokens_dropped


class Ingestor:
    """Feeds files into an open store."""

    def __init__(
        self,
        store: Store,
        options: IngestOptions | None = None,
        progress: IngestProgress | None = None,
    ) -> None:
        self.store = store
        self.options = options or IngestOptions()
        self.progress = progress
        self.report = IngestReport()
        self._abilities = probe_encoder(store.encoder)
        if self._abilities.text_error and self._abilities.image_error:
            raise InvalidInputError(
                f"encoder {store.encoder.name!r} cannot encode pages: {self._abilities.text_error}"
            )
        self._batch: list[tuple[Page, _FileState]] = []

    def run(self, paths: Sequence[str | Path]) -> IngestReport:
        start = time.perf_counter()
        options = self.options
        found = discover(paths, options.recursive, options.include, options.exclude)
        self.report.failed.extend(found.missing)
        self.report.files_ignored = found.ignored
        self.report.files_excluded = found.excluded
        self.report.folders_not_entered = found.folders_not_entered
        self.report.files_seen = len(found.files)
        if self.progress is not None:
            chunk = self.options.chunk_chars
            estimated = sum(estimate_pages(f, chunk) for f in found.files)
            self.progress.start(len(found.files), estimated)
        states = [_FileState(path) for path in found.files]
        for state in states:
            state.status = self._ingest_file(state)
            if self.progress is not None:
                self.progress.file_done(state.path, state.status)
        self._flush()
        statuses = ["failed" if state.failed else state.status for state in states]
        self.report.files_ingested = statuses.count("ingested")
        self.report.files_unchanged = statuses.count("unchanged")
        self.report.files_skipped = statuses.count("skipped")
        self.report.seconds = time.perf_counter() - start
        return self.report

    # -- one file ----------------------------------------------------------------
    def _ingest_file(self, state: _FileState) -> str:
        options = self.options
        try:
            opened = open_source(state.path, dpi=options.dpi, chunk_chars=options.chunk_chars)
        except SourceError as exc:
            self._fail(state, str(exc))
            self._advance(1)
            return "failed"
        self.report.files_taken_as.setdefault(opened.kind, []).append(self._name(state.path))
        if why := project_file_reason(state.path, opened.kind):
            self.report.project_files[self._name(state.path)] = why
        try:
            document = document_key(self._shown(state.path))
            key = self._ingest_key(opened.kind, opened.sha256)
            present = stored_pages_of(self.store, document)
            keep: set[str] = set()
            todo: list[tuple[PageDraft, str]] = []
            for draft in opened.drafts:
                external_id = f"{document}#{draft.key}"
                reason = self._skip_reason(draft, opened.kind)
                if reason is not None:
                    self.report.skipped.append(
                        SkippedPage(self._name(state.path), draft.page_number, reason)
                    )
                    self._advance(1)
                    continue
                keep.add(external_id)
                stored = present.get(external_id)
                if stored is not None and stored[1].get("ingest_key") == key:
                    self.report.pages_unchanged += 1
                    self._advance(1)
                else:
                    todo.append((draft, external_id))
            stale = [page_id for ext, (page_id, _) in present.items() if ext not in keep]
            if stale:
                # Delete first: a crash afterwards leaves missing pages a re-run adds,
                # never stale pages it would take for current ones.
                self.report.pages_deleted += self.store.delete(stale)
            if not todo:
                if not keep:
                    return "skipped"  # every page skipped (stale ones deleted above)
                return "ingested" if stale else "unchanged"
            common = {
                "source_path": self._name(state.path),
                "file_name": state.path.name,
                "file_type": opened.kind,
                "file_sha256": opened.sha256,
                "page_count": len(opened.drafts),
                "ingest_key": key,
                **({"dpi": options.dpi} if opened.kind == "pdf" else {}),
            }
            for draft, external_id in todo:
                if state.failed:
                    break
                try:
                    page = self._page(draft, external_id, document, common)
                except PAGE_ERRORS as exc:
                    self._fail(state, f"page {draft.page_number}: {exc}")
                    break
                self._batch.append((page, state))
                if len(self._batch) >= options.batch_size:
                    self._flush()
        finally:
            opened.close()
        return "failed" if state.failed else "ingested"

    def _page(
        self, draft: PageDraft, external_id: str, document: str, common: dict[str, Any]
    ) -> Page:
        image = draft.materialise()
        content = Page(text=draft.text, image=image)
        metadata = {
            **draft.extra_metadata,
            **self.options.metadata,
            **common,
            "page_sha256": content.content_hash(),
        }
        return Page(
            text=draft.text,
            image=image,
            external_id=external_id,
            document_id=document,
            page_number=draft.page_number,
            source=str(common["source_path"]),
            metadata=metadata,
        )

    def _skip_reason(self, draft: PageDraft, kind: str) -> str | None:
        name = self.store.encoder.name
        if not draft.text and not draft.has_image:
            return "blank page: no text and no image"
        if not draft.text and self._abilities.image_error:
            return f"no text on this page and encoder {name!r} cannot encode images alone"
        if not draft.has_image and self._abilities.text_error:
            if kind in ("text", "jsonl"):  # say so: these files never carry an image
                return f"{kind} files have no images, and encoder {name!r} cannot encode text alone"
            return f"no page image and encoder {name!r} cannot encode text alone"
        return None

    def _ingest_key(self, kind: str, sha256: str) -> str:
        shape: dict[str, Any] = {
            "v": INGEST_VERSION,
            "kind": kind,
            "file_sha256": sha256,
            "metadata": self.options.metadata,
        }
        if kind == "pdf":
            shape["dpi"] = self.options.dpi
        if kind == "text":
            shape["chunk_chars"] = self.options.chunk_chars
        blob = json.dumps(shape, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:32]

    # -- batches -----------------------------------------------------------------
    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        try:
            ids = self.store.upsert_pages([page for page, _ in batch])
            self._credit(batch, ids)
            return
        except PAGE_ERRORS:
            pass
        # Something in the batch is bad: retry file by file so only that file fails.
        groups: dict[Path, list[tuple[Page, _FileState]]] = {}
        for item in batch:
            groups.setdefault(item[1].path, []).append(item)
        for group in groups.values():
            state = group[0][1]
            try:
                ids = self.store.upsert_pages([page for page, _ in group])
            except PAGE_ERRORS as exc:
                self._fail(state, f"{type(exc).__name__}: {exc}")
                self._advance(len(group))
                continue
            self._credit(group, ids)

    def _credit(self, items: list[tuple[Page, _FileState]], ids: WrittenPages) -> None:
        # The counts come from the write transaction itself: a page a concurrent run
        # stored first, identically, is unchanged here, not added twice.
        count_cuts(self.store, ids, self.report)
        self.report.pages_added += ids.added
        self.report.pages_updated += ids.updated
        self.report.pages_unchanged += ids.unchanged
        self._advance(len(items))

    def _fail(self, state: _FileState, reason: str) -> None:
        if not state.failed:
            state.failed = True
            self.report.failed.append(FileProblem(self._name(state.path), reason))

    def _shown(self, path: Path) -> Path:
        root = self.options.relative_to
        return path if root is None else path.relative_to(root)

    def _name(self, path: Path) -> str:
        return self._shown(path).as_posix() if self.options.relative_to else str(path)

    def _advance(self, pages: int) -> None:
        if self.progress is not None:
            self.progress.advance(pages)


def ingest_paths(
    target: str | Path,
    paths: Sequence[str | Path],
    options: IngestOptions | None = None,
    *,
    encoder: Encoder | str | Path | None = None,
    progress: IngestProgress | None = None,
) -> IngestReport:
    """Open (or create) the store at ``target`` and ingest ``paths`` into it."""
    from latestore.store import Store  # torch and the model stack: only when used

    with Store.open(target, encoder) as store:
        return Ingestor(store, options, progress).run(paths)
