"""The ``latestore`` command line: ingest, search, info, delete, reindex, evaluate.

A thin layer over :mod:`latestore.ingest` and :class:`latestore.Store`. Exit status:
0 success, 1 some files failed to ingest, 2 bad usage or an unusable store.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from rich.console import Console
from rich.table import Table

# Model loading draws tqdm bars ("Loading weights 103/103") on every encoding command;
# the CLI has its own progress display, so they show only with LATESTORE_VERBOSE=1.
# tqdm reads TQDM_DISABLE when it is imported, which the CLI defers until a model loads.
if not os.environ.get("LATESTORE_VERBOSE"):
    os.environ.setdefault("TQDM_DISABLE", "1")

from latestore.cli.common import (
    EncoderDtypeOption,
    EncoderOption,
    EncoderOptionsOption,
    ExistingEncoderOption,
    JsonOption,
    SearchMode,
    StoreOption,
    check_recorded_windowing,
    check_window_options,
    encoder_options,
    errors_as_json,
    fail,
    key_values,
    open_existing,
    open_store,
    print_json,
    recorded_windowing_of,
    reencode_settings,
    window_options,
    windows_flag,
)
from latestore.cli.evaluate import evaluate
from latestore.cli.help_format import hide_flag_types
from latestore.cli.progress import ConsoleProgress, loading
from latestore.cli.snippets import snippets as hit_snippets
from latestore.errors import LatestoreError
from latestore.internal import (
    DEFAULT_MAX_PAGE_TOKENS,
    WindowSettings,
    directory_bytes,
    sqlite_bytes,
)

if TYPE_CHECKING:
    from latestore.ingest import IngestReport

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(
    name="latestore",
    help="Late-interaction retrieval store: ingest files, search, inspect and evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("evaluate")(evaluate)
hide_flag_types()
# `latestore serve` lives in latestore.serve (FastAPI loads only when it runs).
from latestore.serve.command import serve as _serve  # noqa: E402

app.command("serve")(_serve)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


def _print_version(value: bool) -> None:
    if value:
        from latestore import __version__

        typer.echo(f"latestore {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print latestore's version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Late-interaction retrieval store: ingest files, search, list, inspect and evaluate."""
    from latestore.internal import declare_one_shot_process

    # Each command runs once and exits: a search need not import torch (serve and
    # ingest load it anyway).
    declare_one_shot_process()


def parse_metadata(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values that parse as JSON numbers, booleans or null keep
    that type (``year=2024`` is a number), anything else is a string."""
    return key_values(items, "--metadata", scalars_only=True)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest.")],
    store: StoreOption,
    encoder: EncoderOption = None,
    encoder_dtype: EncoderDtypeOption = None,
    encoder_option: EncoderOptionsOption = None,
    batch_size: Annotated[int, typer.Option(help="Pages per write transaction.", min=1)] = 32,
    dpi: Annotated[
        int,
        typer.Option(
            help="PDF render resolution of stored page images (0: no images).", min=0, max=1200
        ),
    ] = 150,
    metadata: Annotated[
        list[str] | None,
        typer.Option("--metadata", "-m", help="key=value added to every page (repeatable)."),
    ] = None,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")
    ] = False,
    include: Annotated[
        list[str] | None,
        typer.Option(
            help="Glob: of the files found in folders, read only those matching one "
            "(name or path inside the folder, e.g. '*.pdf'; repeatable).",
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            help="Glob: leave out the files found in folders that match "
            "(e.g. 'README*', 'drafts/*'; repeatable).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="List the files that would be read, as what, and stop."),
    ] = False,
    chunk_chars: Annotated[
        int, typer.Option(help="Max characters per page of a text file.", min=100)
    ] = 1500,
    windows: Annotated[
        bool | None,
        typer.Option(
            "--windows/--no-windows",
            help="New store: read long pages whole, in overlapping windows (the default), "
            "or truncate them to the model length. An existing store keeps its own.",
            show_default=False,
        ),
    ] = None,
    window_stride: Annotated[
        int | None,
        typer.Option(
            help="New store: text tokens between window starts "
            "(default: three quarters of a window).",
            min=1,
        ),
    ] = None,
    max_page_tokens: Annotated[
        int | None,
        typer.Option(
            help=f"New store: text tokens read per page at most "
            f"(default {DEFAULT_MAX_PAGE_TOKENS:,}).",
            min=1,
        ),
    ] = None,
    json_output: JsonOption = False,
    # -- latestore.distributed (issue 16): ingestion on a Ray cluster ---------------
    ray_encoders: Annotated[
        int, typer.Option(help="Encode on this many Ray actors (0: in this process).", min=0)
    ] = 0,
    ray_gpus: Annotated[float, typer.Option(help="GPUs per Ray encode actor.", min=0)] = 0.0,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: $RAY_ADDRESS or local).")
    ] = None,
) -> None:
    """Ingest PDFs, images (png/jpeg/tiff/webp), text/markdown and JSONL files.

    Re-running adds nothing; a changed file replaces its pages; after a crash or kill the
    same command finishes the job. Files that cannot be read are listed with their
    reasons and make the exit status 1; the others are ingested.
    """
    errors_as_json(json_output)
    # The ingest pipeline (PDF, image and text readers) loads for this command only.
    from latestore.ingest import IngestOptions, Ingestor

    requested = window_options(windows, window_stride, max_page_tokens)
    try:
        options = IngestOptions(
            dpi=dpi,
            batch_size=batch_size,
            recursive=recursive,
            chunk_chars=chunk_chars,
            metadata=parse_metadata(metadata or []),
            include=tuple(include or ()),
            exclude=tuple(exclude or ()),
        )
        if dry_run:
            from latestore.ingest.dry_run import dry_run as plan

            print_plan(plan(paths, options), json_output)
            return
        if ray_encoders:  # latestore.distributed (issue 16)
            from latestore.distributed.cli_ingest import ingest_on_ray

            if requested and (recorded := recorded_windowing_of(store)) is not None:
                check_recorded_windowing(recorded, requested, store)
            with ConsoleProgress(err) as progress:
                report = ingest_on_ray(
                    store, paths, options, encoder=encoder, encoder_dtype=encoder_dtype,
                    progress=progress, encoders=ray_encoders, gpus_per_encoder=ray_gpus,
                    address=ray_address,
                    encoder_options=encoder_options(encoder_option) | requested,
                )  # fmt: skip
            windowing = recorded_windowing_of(store)
        else:
            with loading(err, "loading the encoder"):
                opened = open_store(
                    store, encoder, encoder_dtype, options=encoder_option, window_options=requested
                )
            with opened, ConsoleProgress(err) as progress:
                if requested:
                    check_window_options(opened, requested, store)
                with loading(err, "loading the encoder"):
                    ingestor = Ingestor(opened, options, progress)
                report = ingestor.run(paths)
                windowing = opened.encoding()["windowing"]
    except LatestoreError as exc:
        fail(str(exc))
    if json_output:
        print_json(out, report.to_dict() | {"page_windows": windowing})
    else:
        print_summary(report, windowing, store)
    raise typer.Exit(report.exit_code)


def print_summary(report: IngestReport, windowing: dict[str, Any] | None, store: str) -> None:
    from latestore.ingest.selection import exclude_hint

    out.print(
        f"{report.files_seen:,} files: {report.files_ingested:,} ingested, "
        f"{report.files_unchanged:,} unchanged, {report.files_skipped:,} skipped, "
        f"{len(report.failed):,} failed, {report.files_ignored:,} ignored (unsupported type)"
        + (f", {report.files_excluded:,} excluded" if report.files_excluded else "")
    )
    out.print(
        f"pages: {report.pages_added:,} added, {report.pages_updated:,} updated, "
        f"{report.pages_unchanged:,} unchanged, {report.pages_deleted:,} deleted, "
        f"{len(report.skipped):,} skipped in {report.seconds:,.1f} s "
        f"({report.to_dict()['pages_per_second']:,.1f} pages/s)"
    )
    if report.files_taken_as:
        out.print(
            "read as: " + "; ".join(_taken_as(k, v) for k, v in report.files_taken_as.items())
        )
    if report.project_files:
        shown = list(report.project_files.items())
        out.print(
            f"[yellow]{len(shown)} file{'s' if len(shown) != 1 else ''} read as pages "
            "look like a project's own files, not documents:[/yellow]"
        )
        for path, why in shown[:10]:
            out.print(f"  {path} ({why})")
        out.print(
            f"  to leave them out next time: {exclude_hint(list(report.project_files))}; "
            f"to remove them now: latestore delete --store {store} --document PATH"
        )
    if report.folders_not_entered:
        out.print(
            f"{report.folders_not_entered:,} sub-folders not entered: "
            "add --recursive to ingest them"
        )
    if report.pages_truncated:
        out.print(
            f"[yellow]{report.pages_truncated:,} pages truncated: {report.tokens_dropped:,} "
            "text tokens were not encoded.[/yellow] " + truncation_hint(windowing, store)
        )
    if report.skipped:
        out.print("skipped pages:")
        for page in report.skipped[:50]:
            out.print(f"  {page.path} page {page.page}: {page.reason}")
        if len(report.skipped) > 50:
            out.print(f"  ... and {len(report.skipped) - 50:,} more (use --json for all)")
    if report.failed:
        out.print("[red]failed files:[/red]")
        for problem in report.failed:
            out.print(f"  {problem.path}: {problem.reason}")


def truncation_hint(windowing: dict[str, Any] | None, store: str) -> str:
    """How to keep the pages whole: the exact command for this store's settings."""
    if windowing is not None and windowing.get("windows") is False:
        return (
            "This store truncates long pages (it was created without windows). To read "
            f"them whole: `latestore reindex --store {store} --re-encode` (re-encodes the "
            "store in windows; later ingests follow)."
        )
    cap = (windowing or {}).get("max_page_tokens", DEFAULT_MAX_PAGE_TOKENS)
    return (
        f"They are longer than the {cap:,} text tokens a page is read at most. To read "
        f"more: `latestore reindex --store {store} --re-encode --max-page-tokens "
        f"{2 * cap}` (a new store: `latestore ingest --max-page-tokens {2 * cap}`)."
    )


def print_plan(plan: Any, json_output: bool) -> None:
    """``ingest --dry-run``: one row per file, then what would be passed over."""
    from latestore.ingest.selection import exclude_hint

    if json_output:
        print_json(out, plan.to_dict())
        return
    table = Table("file", "read as", "pages", "note")
    table.columns[2].justify = "right"
    for item in plan.files:
        table.add_row(item.path, item.kind or "-", f"{item.pages:,}", item.note or "")
    out.print(table)
    out.print(
        f"would read {len(plan.files):,} files, about {plan.pages:,} pages; "
        f"{plan.files_ignored:,} ignored (unsupported type), {plan.files_excluded:,} "
        f"excluded by --include/--exclude"
        + (
            f"; {plan.folders_not_entered:,} sub-folders not entered (--recursive)"
            if plan.folders_not_entered
            else ""
        )
    )
    for problem in plan.missing:
        out.print(f"[red]{problem.path}: {problem.reason}[/red]")
    noted = [item.path for item in plan.files if item.note and item.kind is not None]
    if noted:
        out.print(f"to leave out the noted files: {exclude_hint(noted)}")


def _taken_as(kind: str, paths: list[str]) -> str:
    """``"text: 2 files (README.md, notes.txt)"``, naming at most three."""
    names = ", ".join(Path(p).name for p in paths[:3]) + (", ..." if len(paths) > 3 else "")
    return f"{kind}: {len(paths):,} file{'s' if len(paths) != 1 else ''} ({names})"


def parse_filter(filter_json: str | None) -> dict[str, Any] | None:
    if filter_json is None:
        return None
    try:
        spec = json.loads(filter_json)
    except json.JSONDecodeError as exc:
        fail(f"--filter is not valid JSON: {exc}")
    if not isinstance(spec, dict):
        fail("--filter must be a JSON object")
    return spec


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The query text.")],
    store: StoreOption,
    k: Annotated[int, typer.Option("-k", "--k", help="Number of hits.", min=1, max=10_000)] = 10,
    filter_json: Annotated[
        str | None,
        typer.Option("--filter", help='Metadata filter as JSON, e.g. \'{"file_type": "pdf"}\'.'),
    ] = None,
    exhaustive: Annotated[bool, typer.Option(help="Score every page exactly.")] = False,
    mode: Annotated[
        SearchMode | None,
        typer.Option(
            help="maxsim: exact MaxSim; lexical: BM25 over the full-text index; hybrid: "
            "both, fused (a convex mix of normalised scores by default). Default: the "
            "store's StoreConfig.search.mode (maxsim)."
        ),
    ] = None,
    exact: Annotated[
        str | None, typer.Option(help="A phrase every hit must contain (after stemming).")
    ] = None,
    encoder: ExistingEncoderOption = None,
    encoder_option: EncoderOptionsOption = None,
    json_output: JsonOption = False,
) -> None:
    """Rank pages for a query (exact MaxSim over FAISS candidates, or --mode)."""
    errors_as_json(json_output)
    spec = parse_filter(filter_json)
    try:
        # The index loads with the first search that needs it: a lexical one does not.
        with open_existing(store, encoder, options=encoder_option, load_index=False) as opened:
            if spec is not None:
                # Check the filter in SQL before the query loads the model (seconds):
                # ANDed with an id no page has, it compiles fully and matches nothing.
                opened.page_ids({"$and": [spec, {"page_id": 0}]})
            chosen = opened.config.search.mode if mode is None else mode.value
            # Encoded once: the same vectors rank the pages and find each snippet's tokens.
            vectors = None if chosen == "lexical" else opened.encode_queries([query])[0]
            hits = opened.search(
                query if vectors is None else vectors,
                k=k,
                filter=spec,
                exhaustive=exhaustive,
                mode=chosen,
                phrase=exact,
                lexical_text=None if vectors is None else query,
            )
            # About three lines of the text column, whatever the terminal's width.
            width = max(80, min(240, 3 * (out.width - 50)))
            snippets = hit_snippets(opened, query, vectors, hits, width)
    except LatestoreError as exc:
        fail(str(exc))
    if json_output:
        pairs = zip(hits, snippets, strict=True)
        print_json(out, [hit.model_dump() | {"snippet": text.plain} for hit, text in pairs])
        return
    table = Table("#", "score", "matched", "id", "document", "page", "text")
    table.columns[4].max_width = 24
    table.columns[4].overflow = "ellipsis"
    table.columns[6].ratio = 1
    for hit, text in zip(hits, snippets, strict=True):
        name = Path(hit.document_id).name if hit.document_id else (hit.external_id or "")
        table.add_row(
            str(hit.rank),
            f"{hit.score:.3f}",
            "+".join(hit.signals),
            str(hit.page_id),
            name,
            "" if hit.page_number is None else str(hit.page_number),
            text,
        )
    out.print(table)


@app.command()
def info(
    store: StoreOption, encoder: ExistingEncoderOption = None, json_output: JsonOption = False
) -> None:
    """Pages, documents, tokens, encoder, index and bytes on disk."""
    errors_as_json(json_output)
    try:
        with open_existing(store, encoder) as opened:
            stats = opened.stats()
            encoding = opened.encoding()
            analyzer = opened.text_analyzer()
            db_file = opened.sqlite_path
            config = opened.config.flat()
    except LatestoreError as exc:
        fail(str(exc))
    # "none": a compact-only store keeps no full-precision vectors (only codes)
    itemsize = {"float16": 2, "float32": 4, "int8": 1, "none": 0}.get(stats.vector_dtype, 4)
    index_dir = Path(stats.index_dir) if stats.index_dir else None
    details = {
        "store": str(store),
        "pages": stats.pages,
        "documents": stats.documents,
        "pages_with_image": stats.pages_with_image,
        "image_bytes": stats.image_bytes,
        "tokens": stats.tokens,
        "encoder": stats.encoder,
        "encoder_fingerprint": stats.encoder_fingerprint,
        "page_windows": encoding["windowing"],
        "pages_truncated": encoding["pages_truncated"],
        "tokens_dropped": encoding["tokens_dropped"],
        "pages_uncounted": encoding["pages_uncounted"],
        "pages_pending_reencode": encoding["pages_pending_reencode"],
        "text_analyzer": analyzer,
        "dim": stats.dim,
        "vector_dtype": stats.vector_dtype,
        "index": stats.index,
        "search_plan": stats.search_plan,
        **(
            {"vector_cache_fallback": stats.vector_cache_fallback}
            if stats.vector_cache_fallback
            else {}
        ),
        "search_settings": {
            k: config[k]
            for k in (
                "k_per_token",
                "nprobe",
                "n_rerank",
                "exhaustive_max_tokens",
                "device_exact",
                "search_mode",
            )
        },
        **{k: v for k, v in stats.model_dump().items() if k.startswith("device")},
        "sql_bytes": sqlite_bytes(db_file),
        "vector_bytes": stats.tokens * stats.dim * itemsize,
        "index_bytes": directory_bytes(index_dir),
        "index_dir": stats.index_dir,
    }
    if json_output:
        print_json(out, details)
        return
    table = Table("property", "value", show_header=False)
    for name, value in details.items():
        if name.endswith("_bytes") and isinstance(value, int):
            value = f"{value:,} ({value / 2**20:,.1f} MiB)"
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"  # counts as everywhere else: 1,234,567
        if isinstance(value, dict):  # index and search settings: key=value, not a repr
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        table.add_row(name, "n/a" if value is None else str(value))
    out.print(table)
    out.print("vector_bytes are the token vectors held inside the SQL database.")
    if details["pages_pending_reencode"]:
        out.print(
            "pages_pending_reencode: pages encoded by an earlier revision of this encoder "
            "or with other window settings; `latestore reindex --re-encode` re-encodes them "
            f"(add {windows_flag(details['page_windows'])} to keep the store's window settings)."
        )
    if details["pages_uncounted"]:
        out.print(
            "pages_uncounted: pages whose cut is unknown (encoded before latestore counted "
            "it, or vectors given by the caller); `latestore reindex --re-encode` counts them."
        )


@app.command()
def delete(
    store: StoreOption,
    ids: Annotated[list[int] | None, typer.Option("--id", help="Page id (repeatable).")] = None,
    external_ids: Annotated[
        list[str] | None, typer.Option("--external-id", help="External id (repeatable).")
    ] = None,
    documents: Annotated[
        list[str] | None,
        typer.Option(
            "--document",
            help="Every page of a document; an ingested file's document id is its "
            "absolute path, and a relative path is resolved (repeatable).",
        ),
    ] = None,
    filter_json: Annotated[
        str | None,
        typer.Option("--filter", help="Every page matching a filter (JSON), as in search."),
    ] = None,
    missing_ok: Annotated[
        bool,
        typer.Option("--missing-ok", help="Exit 0 when nothing matched (default: exit status 1)."),
    ] = False,
    encoder: ExistingEncoderOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete pages by page id, external id, document or filter.

    A delete that matches no page says so and exits 1, unless --missing-ok.
    """
    errors_as_json(json_output)
    if not (ids or external_ids or documents or filter_json):
        fail("give at least one --id, --external-id, --document or --filter")
    spec = parse_filter(filter_json)
    from latestore.internal import any_of  # the SQL schema: for this command only

    try:
        names = [
            *(documents or []),
            *(Path(d).expanduser().resolve().as_posix() for d in documents or []),
        ]
        selected = any_of(
            page_ids=ids or [],
            external_ids=external_ids or [],
            document_ids=sorted(set(names)),
            spec=spec,
        )
        assert selected is not None  # one selector at least, checked above
        with open_existing(store, encoder, load_index=False) as opened:
            # One transaction for every selector: a bad filter deletes nothing at all.
            removed = opened.delete_where(selected)
            remaining = opened.count()
    except LatestoreError as exc:
        fail(str(exc))
    if removed == 0 and not missing_ok:
        fail(
            f"no page matched: nothing deleted ({remaining:,} pages remain; "
            "`latestore list` shows what is stored; --missing-ok exits 0)",
            code=1,
        )
    if json_output:
        print_json(out, {"deleted": removed, "pages": remaining})
    else:
        out.print(f"deleted {removed:,} pages; {remaining:,} remain")


@app.command("list")
def list_command(
    store: StoreOption,
    pages: Annotated[
        bool, typer.Option("--pages", help="One row per page (default: one per document).")
    ] = False,
    documents: Annotated[
        list[str] | None,
        typer.Option(
            "--document",
            help="Only this document (an ingested file's path, resolved; repeatable).",
        ),
    ] = None,
    filter_json: Annotated[
        str | None,
        typer.Option("--filter", help="Only pages matching a filter (JSON), as in search."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows shown at most (0: all).", min=0)] = 100,
    json_output: JsonOption = False,
) -> None:
    """List what is stored: documents (pages, tokens, type) or, with --pages, pages."""
    errors_as_json(json_output)
    spec = parse_filter(filter_json)
    from latestore.cli.listing import document_rows, page_rows

    try:
        with open_existing(store, None, load_index=False) as opened:
            wanted = None
            if documents:
                resolved = (Path(d).expanduser().resolve().as_posix() for d in documents)
                wanted = sorted({*documents, *resolved})
            rows, total = (page_rows if pages else document_rows)(opened, spec, wanted, limit)
    except LatestoreError as exc:
        fail(str(exc))
    kind = "pages" if pages else "documents"
    if json_output:
        print_json(out, {kind: rows, "total": total, "shown": len(rows)})
        return
    if not rows:
        out.print(f"no {kind} stored" + (" match" if spec or documents else ""))
        return
    # The table keeps what fits a terminal; --json has every field.
    columns = (
        ("page_id", "name", "page", "tokens", "tokens_dropped", "text")
        if pages
        else ("document", "type", "pages", "tokens", "tokens_dropped")
    )
    table = Table(*(name.replace("tokens_dropped", "dropped") for name in columns))
    for index, name in enumerate(columns):
        column = table.columns[index]
        column.no_wrap = True
        if name in ("pages", "tokens", "page_id", "page", "tokens_dropped"):
            column.justify = "right"
        if name in ("text", "document"):
            column.overflow, column.max_width = "ellipsis", max(24, out.width - 50)
    for row in rows:
        named = row | {"name": Path(row["document"]).name if row.get("document") else ""}
        table.add_row(*(_cell(named[name]) for name in columns))
    out.print(table)
    if total > len(rows):
        out.print(f"{len(rows):,} of {total:,} {kind} shown (--limit 0 for all)")
    else:
        out.print(f"{total:,} {kind}")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


@app.command()
def reindex(
    store: StoreOption,
    encoder: ExistingEncoderOption = None,
    re_encode: Annotated[
        bool,
        typer.Option(
            "--re-encode",
            help="Re-encode every page not yet encoded by the encoder as it is now (a new "
            "encoder revision) with these window settings (windows on unless --no-windows; "
            "image models have none), in batches; resumable after a crash.",
        ),
    ] = False,
    windows: Annotated[
        bool,
        typer.Option(
            "--windows/--no-windows",
            help="With --re-encode: read long pages in windows, or truncate them.",
        ),
    ] = True,
    window_stride: Annotated[
        int | None,
        typer.Option(
            help="With --re-encode: text tokens between window starts "
            "(default: three quarters of a window).",
            min=1,
        ),
    ] = None,
    max_page_tokens: Annotated[
        int,
        typer.Option(help="With --re-encode: text tokens per page kept at most.", min=1),
    ] = DEFAULT_MAX_PAGE_TOKENS,
    batch_size: Annotated[
        int, typer.Option(help="With --re-encode: pages per write transaction.", min=1)
    ] = 256,
    json_output: JsonOption = False,
) -> None:
    """Rebuild the derived FAISS index from the vectors in SQL, and snapshot it;
    with --re-encode, first re-encode the pages of an earlier encoder revision or other
    window settings."""
    errors_as_json(json_output)
    result: dict[str, Any] = {}
    try:
        settings = WindowSettings.from_options(
            {
                "windows": windows,
                "window_stride": window_stride,
                "max_page_tokens": max_page_tokens,
            }
        )
        with open_existing(store, encoder) as opened:
            if re_encode:
                target = reencode_settings(opened.encoder, settings, window_stride, max_page_tokens)
                with ConsoleProgress(err, label="re-encode") as progress:
                    began = time.perf_counter()

                    def advance(done: int, total: int) -> None:
                        # The total comes with the first batch done: the clock started
                        # before it, and the job counts pages, not files.
                        if not progress.pages_total:
                            progress.start(0, total, started=began)
                        progress.advance(done - progress.pages_done)

                    report = opened.reencode(target, batch_size=batch_size, on_progress=advance)
                result["re_encode"] = report.to_dict()
            opened.reindex()
            stats = opened.stats()
    except LatestoreError as exc:
        fail(str(exc))
    result |= {"pages": stats.pages, "tokens": stats.tokens, "index": stats.index}
    if json_output:
        print_json(out, result)
        return
    if re_encode:
        done = result["re_encode"]
        out.print(
            f"re-encoded {done['pages_reencoded']:,} pages ({done['tokens_before']:,} -> "
            f"{done['tokens_after']:,} tokens), kept {done['pages_kept']:,} with given vectors; "
            f"window settings now {done['windowing']}"
        )
    index = ", ".join(f"{key}={value}" for key, value in stats.index.items())
    out.print(f"rebuilt index over {stats.pages:,} pages, {stats.tokens:,} tokens ({index})")


def main() -> None:
    """The ``latestore`` script. Under ``--json``, a usage error (an unknown option, a
    value of the wrong type) is also one JSON document on stdout, as every other error
    is: click reports those before any command runs, so the command cannot."""
    # What is loaded by now lives as long as the process: later collections skip it.
    gc.freeze()
    if "--json" not in sys.argv[1:]:
        app()  # typer's own formatting of usage errors
        return
    # Recent typer vendors click: its usage errors derive from typer's own base class.
    usage_errors = (click.ClickException, getattr(typer, "TyperException", click.ClickException))
    try:
        code = app(standalone_mode=False)
    except (click.exceptions.Abort, typer.Abort):
        typer.echo("Aborted!", err=True)
        sys.exit(1)
    except usage_errors as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        status = int(getattr(exc, "exit_code", 2))
        typer.echo(json.dumps({"error": message, "exit_code": status}))
        typer.echo(f"Error: {message}", err=True)
        sys.exit(status)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
