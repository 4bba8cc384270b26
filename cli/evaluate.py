"""``latestore evaluate``: retrieval quality of a store on a BEIR-format folder."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from latestore.cli.common import (
    EncoderDtypeOption,
    EncoderOption,
    JsonOption,
    SearchMode,
    errors_as_json,
    fail,
    print_json,
)
from latestore.cli.progress import ConsoleProgress
from latestore.errors import LatestoreError

# Cranfield's qrels codes run the other way (1 = complete answer ... 4 = minimum
# interest, -1 = not relevant), so graded nDCG needs gain = 5 - code.
GAIN_PRESETS: dict[str, dict[float, float] | None] = {
    "identity": None,
    "cranfield": {1.0: 4.0, 2.0: 3.0, 3.0: 2.0, 4.0: 1.0},
}


def gain_function(spec: str) -> Callable[[float], float] | None:
    """A preset name, or explicit ``code=gain`` pairs ("1=4,2=3,3=2,4=1"); codes not
    listed get gain 0 (not relevant)."""
    if spec in GAIN_PRESETS:
        table = GAIN_PRESETS[spec]
    else:
        table = {}
        for pair in spec.split(","):
            code, sep, gain = pair.partition("=")
            try:
                table[float(code)] = float(gain)
            except ValueError:
                fail(
                    f"--gain-map: expected a preset ({', '.join(GAIN_PRESETS)}) or code=gain "
                    f"pairs, got {pair!r}"
                )
            if not sep:
                fail(f"--gain-map: {pair!r} is not code=gain")
    if table is None:
        return None
    mapping = table
    return lambda score: mapping.get(score, 0.0)


def evaluate(
    directory: Annotated[
        Path, typer.Argument(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels.tsv.")
    ],
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            "-s",
            help="Store to fill and search (reused when it already holds the "
            "corpus); default: a temporary one.",
        ),
    ] = None,
    limit_docs: Annotated[
        int | None,
        typer.Option(
            help="Use only the first N documents, and only the queries with a judged "
            "document among them (the output says how many were kept).",
            min=1,
        ),
    ] = None,
    gain_map: Annotated[
        str,
        typer.Option(
            help="qrels score -> gain: 'identity', 'cranfield' (gain = 5 - code) or "
            "'code=gain,...'."
        ),
    ] = "identity",
    k: Annotated[
        int, typer.Option("-k", "--k", help="Hits per query (recall@100 needs 100).", min=10)
    ] = 100,
    batch_size: Annotated[int, typer.Option(help="Pages per write transaction.", min=1)] = 256,
    encoder: EncoderOption = None,
    encoder_dtype: EncoderDtypeOption = None,
    windows: Annotated[
        bool | None,
        typer.Option(
            "--windows/--no-windows",
            help="Read long pages whole, in overlapping windows (the default for a new "
            "store), or truncate them; a store being reused keeps its own.",
            show_default=False,
        ),
    ] = None,
    modes: Annotated[
        list[SearchMode] | None,
        typer.Option(
            "--mode",
            help="Search mode to evaluate (repeatable: each is run on the same store); "
            "default maxsim.",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """nDCG@10, recall@10/100, MRR@10 and overlap@10 with exhaustive MaxSim on a BEIR folder."""
    errors_as_json(json_output)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels.tsv"):
        if not (directory / name).is_file():
            fail(f"{directory} is not a BEIR folder: {name} is missing")
    # Imported here, not at the top: every CLI command imports this module (it
    # registers the command), and latestore.evaluation brings the pydantic models.
    from latestore.evaluation import load_beir

    data = load_beir(directory, gain_function(gain_map), limit_docs)
    if not data.queries:
        fail(
            f"no query has a judged document among the first {limit_docs:,} documents: "
            "raise --limit-docs"
            if limit_docs
            else f"{directory}: no query has a judged document (qrels.tsv)"
        )
    with tempfile.TemporaryDirectory(prefix="latestore-eval-") as scratch:
        target = store or str(Path(scratch) / "eval.db")
        try:
            chosen = [m.value for m in modes] if modes else ["maxsim"]
            result = _run(target, encoder, encoder_dtype, data, k, batch_size, windows, chosen)
        except LatestoreError as exc:
            fail(str(exc))
    result.update(
        dataset=str(directory),
        gain_map=gain_map,
        store=store,
        limit_docs=limit_docs,
        queries_dropped=data.queries_dropped,
    )
    if json_output:
        print_json(Console(), result)
    else:
        _print(result)


def encoder_spec(encoder: str) -> str:
    """A registered name as it is, a folder as the absolute path a store records."""
    from latestore.internal import registered_names

    return encoder if encoder in registered_names() else str(Path(encoder).expanduser().resolve())


def _run(
    target: str,
    encoder: str | None,
    encoder_dtype: str | None,
    data: Any,
    k: int,
    batch_size: int,
    windows: bool | None,
    modes: list[str],
) -> dict[str, Any]:
    from latestore.evaluation import beir_pages

    pages = beir_pages(data.corpus)
    # By name or folder (loaded once, by the store), so the window option reaches it.
    spec = None if encoder is None else encoder_spec(encoder)
    options: dict[str, Any] = {} if windows is None else {"windows": windows}
    if encoder_dtype:
        options["dtype"] = encoder_dtype
    from latestore.store import Store  # torch and the model stack: only when used

    with Store.open(target, spec, encoder_options=options or None) as opened:
        start = time.perf_counter()
        with ConsoleProgress(Console(stderr=True), label="encode corpus") as progress:
            progress.start(0, len(pages))
            for begin in range(0, len(pages), batch_size):
                chunk = pages[begin : begin + batch_size]
                opened.upsert_pages(chunk)
                progress.advance(len(chunk))
        build_s = time.perf_counter() - start
        reports = {mode: _search(opened, data, k, mode) for mode in modes}
        stats = opened.stats()
        encoding = opened.encoding()
    return {
        "documents": len(data.corpus),
        "queries": len(data.queries),
        "tokens": stats.tokens,
        "encoder": stats.encoder,
        "index": stats.index,
        "page_windows": encoding["windowing"],
        "pages_truncated": encoding["pages_truncated"],
        "tokens_dropped": encoding["tokens_dropped"],
        "build_seconds": round(build_s, 1),
        # The first mode's figures at the top level, as before --mode existed.
        **_mode_result(reports[modes[0]]),
        "modes": {mode: _mode_result(report) for mode, report in reports.items()},
    }


def _search(store: Any, data: Any, k: int, mode: str) -> Any:
    """``evaluate_store`` with a progress bar (or log lines) over its searches."""
    from latestore.evaluation import evaluate_store

    with ConsoleProgress(Console(stderr=True), label=f"search ({mode})") as progress:
        began = time.perf_counter()

        def advance(done: int, total: int) -> None:
            if not progress.pages_total:
                progress.start(0, total, started=began)
            progress.advance(done - progress.pages_done)

        return evaluate_store(store, data, k=k, mode=mode, on_progress=advance)


def _mode_result(report: Any) -> dict[str, Any]:
    return {
        "default": report.default.__dict__,
        "exhaustive": report.exhaustive.__dict__,
        "overlap10": report.overlap10,
        "latency_ms": report.latency_ms,
        "rows": report.rows(),
    }


def _print(result: dict[str, Any]) -> None:
    console = Console(highlight=False)
    console.print(
        f"{result['dataset']}: {result['documents']:,} documents, {result['queries']:,} "
        f"queries, {result['tokens']:,} tokens, encoder {result['encoder']}, index "
        f"{result['index']}, gain map {result['gain_map']}, build {result['build_seconds']:,} s"
    )
    if result["limit_docs"]:
        kept, dropped = result["queries"], result["queries_dropped"]
        console.print(
            f"[yellow]--limit-docs {result['limit_docs']:,}: {kept:,} of {kept + dropped:,} "
            f"judged queries kept, the ones with a judged document among these documents; "
            f"{dropped:,} left out[/yellow]"
        )
    console.print(
        f"page windows {result['page_windows']}: {result['pages_truncated']:,} pages truncated, "
        f"{result['tokens_dropped']:,} tokens dropped"
    )
    for mode, figures in result["modes"].items():
        table = Table("metric", "Store.search (default)", "exhaustive MaxSim", title=f"mode {mode}")
        for row in figures["rows"]:
            table.add_row(*row)
        table.add_row("overlap@10 vs exhaustive", f"{figures['overlap10']:.4f}", "1.0000")
        console.print(table)
        latency = figures["latency_ms"]
        console.print(
            f"search latency p50/p95: {latency['search_p50']:.1f}/{latency['search_p95']:.1f} "
            f"ms (query vectors in), {latency['text_search_p50']:.1f}/"
            f"{latency['text_search_p95']:.1f} ms (text in, encoder included)"
        )
