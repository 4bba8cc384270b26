"""Offline ingestion on a Ray cluster: the local ingestion's results, in parallel.

The pipeline is Ray Data's batch-inference shape::

    files ──flat_map──▶ plan + render (tasks) ──map_batches──▶ encode (actor pool,
    one model per actor, ``num_gpus`` each) ──iter_rows──▶ driver: Store.upsert_pages

* Each file is read, compared with what the store holds and rendered in a task of
  its own; pages already stored from the same file version are not rendered.
* Pages are encoded on ``encoders`` actors, each loading the store's encoder once
  (on a GPU of its own when ``gpus_per_encoder`` is 1).
* The driver writes ``options.batch_size`` pages per ``Store.upsert_pages`` call (one
  transaction), with the vectors the actors computed (see :mod:`.replay_encoder`),
  so rows, ids, ``encoded_with`` and window counts are what ``ingest_paths`` writes.
  Stale pages of a changed file are deleted; a failing batch is retried file by file.
* Resumable and idempotent as ``ingest_paths``: after a crash (of the driver, or of
  the whole job) the same call skips every page committed, by ``ingest_key``. An
  encode actor that dies is restarted by Ray Data and its batch retried.
* One progress bar: the caller's :class:`~latestore.ingest.IngestProgress`, advanced
  by the driver as pages are committed or skipped; Ray Data's own bars are off.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray

from latestore.distributed.coordinator_sync import SqlOnlyStore
from latestore.distributed.ingest_stages import (
    FILE,
    FileRenderer,
    PageEncoder,
    identify_encoder,
)
from latestore.distributed.replay_encoder import ReplayEncoder, replay_for
from latestore.errors import InvalidInputError
from latestore.ingest.pipeline import (
    PAGE_ERRORS,
    FileProblem,
    IngestOptions,
    IngestProgress,
    IngestReport,
    SkippedPage,
    count_cuts,
    discover,
)
from latestore.ingest.selection import project_file_reason
from latestore.ingest.sources import estimate_pages
from latestore.internal import EncodedPage, to_url
from latestore.models import Page, WrittenPages
from latestore.store import Store


@dataclass(frozen=True)
class _Resources:
    encoders: int
    gpus_per_encoder: float
    cpus_per_encoder: float
    render_cpus: float
    encode_batch_size: int


@dataclass
class _FileState:
    path: str
    todo: int = 0
    done: int = 0
    planned: bool = False
    failed: bool = False
    stale_deleted: bool = False
    reported: bool = False
    status: str = "pending"


@dataclass
class _Pending:
    page: Page
    file: _FileState
    key: str
    encoded: EncodedPage


@dataclass
class _Run:
    store: Store
    replay: ReplayEncoder
    options: IngestOptions
    progress: IngestProgress | None
    report: IngestReport = field(default_factory=IngestReport)
    files: dict[str, _FileState] = field(default_factory=dict)
    batch: list[_Pending] = field(default_factory=list)


def ray_ingest_paths(
    target: str | Path,
    paths: Sequence[str | Path],
    options: IngestOptions | None = None,
    *,
    encoder: str | Path | None = None,
    encoder_options: Mapping[str, Any] | None = None,
    progress: IngestProgress | None = None,
    encoders: int = 1,
    gpus_per_encoder: float = 0.0,
    cpus_per_encoder: float = 1.0,
    render_cpus: float = 0.5,
    encode_batch_size: int = 8,
) -> IngestReport:
    """Ingest ``paths`` into the store at ``target`` on the Ray cluster.

    ``target`` must be a database every node reaches (PostgreSQL; a SQLite file only
    on a single machine). ``encoder`` is a name or checkpoint folder (the store's
    recorded encoder by default) that each actor loads; ``encoders`` actors run,
    with ``gpus_per_encoder`` GPUs and ``cpus_per_encoder`` CPUs each; each file is
    rendered by a task of ``render_cpus`` CPUs. The actors hold their CPUs for the
    whole job, so leave room for rendering (``encoders * cpus_per_encoder`` below the
    cluster's CPUs), or no file is ever rendered. Ray is started locally if needed.
    """
    options = options or IngestOptions()
    if encoders < 1 or encode_batch_size < 1 or gpus_per_encoder < 0:
        raise InvalidInputError("encoders and encode_batch_size must be >= 1, gpus >= 0")
    if cpus_per_encoder < 0 or render_cpus <= 0:
        raise InvalidInputError("cpus_per_encoder must be >= 0 and render_cpus > 0")
    start = time.perf_counter()
    url = to_url(target)
    spec = None if encoder is None else str(encoder)
    loader_options = dict(encoder_options or {})
    if not ray.is_initialized():
        ray.init()
    identify = ray.remote(num_gpus=gpus_per_encoder)(identify_encoder)
    identity = ray.get(identify.remote(url, spec, loader_options))  # type: ignore[attr-defined]
    if identity.text_error and identity.image_error:
        raise InvalidInputError(
            f"encoder {identity.name!r} cannot encode pages: {identity.text_error}"
        )
    replay = replay_for(identity)
    found = discover(paths, options.recursive, options.include, options.exclude)
    with SqlOnlyStore.open(url, replay) as store:
        run = _Run(store, replay, options, progress)
        run.report.failed.extend(found.missing)
        run.report.files_ignored = found.ignored
        run.report.files_excluded = found.excluded
        run.report.folders_not_entered = found.folders_not_entered
        run.report.files_seen = len(found.files)
        if progress is not None:
            estimated = sum(estimate_pages(f, options.chunk_chars) for f in found.files)
            progress.start(len(found.files), estimated)
        run.files = {str(f): _FileState(str(f)) for f in found.files}
        if found.files:
            resources = _Resources(
                encoders, gpus_per_encoder, cpus_per_encoder, render_cpus, encode_batch_size
            )
            rows = iter(
                _pipeline(url, spec, loader_options, options, identity, found.files, resources)
            )
            try:
                for row in rows:
                    _take(run, row)
                _flush(run)
            finally:
                # Stop the pipeline now, not at garbage collection: an abandoned run
                # would keep its encode actors, and their CPUs and GPUs, reserved.
                close = getattr(rows, "close", None)
                if close is not None:
                    close()
        _finish(run)
    run.report.seconds = time.perf_counter() - start
    return run.report


def _pipeline(
    url: str,
    spec: str | None,
    loader_options: dict[str, Any],
    options: IngestOptions,
    identity: Any,
    files: list[Path],
    resources: _Resources,
) -> Any:
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the caller's bar is the one bar
    context.enable_operator_progress_bars = False
    items = [{"path": str(f)} for f in files]
    files_ds = ray.data.from_items(items, override_num_blocks=len(items))
    pages_ds = files_ds.flat_map(
        FileRenderer(url, options, identity), num_cpus=resources.render_cpus
    )
    encoded_ds = pages_ds.map_batches(
        PageEncoder,
        fn_constructor_kwargs={"url": url, "spec": spec, "options": loader_options},
        batch_size=resources.encode_batch_size,
        batch_format="pandas",
        # Ray Data restarts a dead actor and retries its batch (max_restarts=-1 and
        # max_task_retries=-1 are its defaults for actor pools).
        compute=ray.data.ActorPoolStrategy(size=resources.encoders),
        num_gpus=resources.gpus_per_encoder,
        num_cpus=resources.cpus_per_encoder,
    )
    return encoded_ds.iter_rows()


def _take(run: _Run, row: Mapping[str, Any]) -> None:
    state = run.files[row["path"]]
    info = json.loads(row["info"])
    if row["kind"] == FILE:
        _planned(run, state, info)
        return
    encoded = json.loads(row["encoded"])
    if state.failed or "error" in encoded:
        # As local ingest: a page that cannot be encoded fails its file; the file's
        # later pages are not written (earlier batches stay committed).
        if "error" in encoded:
            _fail(run, state, f"page {info['page_number']}: {encoded['error']}")
        state.done += 1
        _advance(run, 1)
        _maybe_done(run, state)
        return
    vectors = np.frombuffer(row["vectors"], dtype=np.float32).reshape(encoded["n_tokens"], -1)
    page = Page(
        text=info["text"],
        image=bytes(row["image"]) if info["has_image"] else None,
        external_id=info["external_id"],
        document_id=info["document_id"],
        page_number=info["page_number"],
        source=info["metadata"]["source_path"],
        metadata=info["metadata"],
    )
    rows = encoded.get("window_rows")
    counts = EncodedPage(
        vectors,
        encoded["text_tokens"],
        encoded["tokens_dropped"],
        None if rows is None else tuple(rows),
    )
    run.batch.append(_Pending(page, state, encoded["key"], counts))
    if len(run.batch) >= run.options.batch_size:
        _flush(run)


def _planned(run: _Run, state: _FileState, plan: dict[str, Any]) -> None:
    state.planned = True
    if "file_type" in plan:  # the file was opened (its type is known)
        run.report.files_taken_as.setdefault(plan["file_type"], []).append(state.path)
        # As the local ingest: a README or a corpus file read as pages is named in the
        # summary, with the --exclude that leaves it out.
        if why := project_file_reason(Path(state.path), plan["file_type"]):
            run.report.project_files[state.path] = why
    if plan["status"] == "failed":
        _fail(run, state, plan["reason"])
    if plan.get("stale") and not state.stale_deleted:
        # As local ingest deletes them: pages the new file version no longer has.
        run.report.pages_deleted += run.store.delete(plan["stale"])
        state.stale_deleted = True
    for page_number, reason in plan.get("skipped", []):
        run.report.skipped.append(SkippedPage(state.path, page_number, reason))
    run.report.pages_unchanged += plan.get("unchanged", 0)
    _advance(run, plan.get("unchanged", 0) + len(plan.get("skipped", [])))
    state.todo = plan.get("todo", 0)
    if plan["status"] == "failed":
        state.status = "failed"
    elif not plan.get("kept"):
        state.status = "skipped"
    elif state.todo == 0:
        state.status = "ingested" if plan.get("stale") else "unchanged"
    else:
        state.status = "ingested"
    _maybe_done(run, state)


def _flush(run: _Run) -> None:
    batch, run.batch = run.batch, []
    if not batch:
        return
    for item in batch:
        run.replay.provide(item.key, item.encoded)
    try:
        try:
            ids: WrittenPages | None = run.store.upsert_pages([item.page for item in batch])
        except PAGE_ERRORS:
            ids = None  # something in the batch is bad: retry file by file below
        if ids is not None:
            _credit(run, batch, ids)
            return
        groups: dict[str, list[_Pending]] = {}
        for item in batch:
            groups.setdefault(item.file.path, []).append(item)
        for group in groups.values():
            try:
                ids = run.store.upsert_pages([item.page for item in group])
            except PAGE_ERRORS as exc:
                _fail(run, group[0].file, f"{type(exc).__name__}: {exc}")
                for item in group:
                    item.file.done += 1
                _advance(run, len(group))
                _maybe_done(run, group[0].file)
                continue
            _credit(run, group, ids)
    finally:
        run.replay.forget()


def _credit(run: _Run, items: list[_Pending], ids: WrittenPages) -> None:
    count_cuts(run.store, ids, run.report)
    # Counted by the write transaction: a page stored first by another run is unchanged.
    run.report.pages_added += ids.added
    run.report.pages_updated += ids.updated
    run.report.pages_unchanged += ids.unchanged
    for item in items:
        item.file.done += 1
    _advance(run, len(items))
    for state in {id(i.file): i.file for i in items}.values():
        _maybe_done(run, state)


def _maybe_done(run: _Run, state: _FileState) -> None:
    """Report a file once its plan arrived and each of its pages is written or failed."""
    if state.planned and not state.reported and state.done >= state.todo:
        state.reported = True
        if run.progress is not None:
            run.progress.file_done(Path(state.path), "failed" if state.failed else state.status)


def _finish(run: _Run) -> None:
    statuses = ["failed" if s.failed else s.status for s in run.files.values()]
    run.report.files_ingested = statuses.count("ingested")
    run.report.files_unchanged = statuses.count("unchanged")
    run.report.files_skipped = statuses.count("skipped")


def _fail(run: _Run, state: _FileState, reason: str) -> None:
    if not state.failed:
        state.failed = True
        run.report.failed.append(FileProblem(state.path, reason))


def _advance(run: _Run, pages: int) -> None:
    if run.progress is not None and pages:
        run.progress.advance(pages)
