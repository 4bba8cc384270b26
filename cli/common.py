"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from rich.console import Console

from latestore.encoders import Encoder
from latestore.internal import (
    DEFAULT_MAX_PAGE_TOKENS,
    WindowSettings,
    as_windowed,
    sqlite_file,
    to_url,
)

if TYPE_CHECKING:
    from latestore.store import Store


class SearchMode(StrEnum):
    """``--mode`` of search and evaluate (latestore.store.search_modes)."""

    maxsim = "maxsim"
    hybrid = "hybrid"
    lexical = "lexical"


StoreOption = Annotated[
    str,
    typer.Option(
        "--store", "-s", help="SQLite file path or SQLAlchemy URL (postgresql+psycopg://...)."
    ),
]
EncoderOption = Annotated[
    str | None,
    typer.Option(
        "--encoder",
        "-e",
        help="Encoder name (minilm) or model directory; "
        "default: the store's own, minilm for a new store.",
    ),
]
EncoderDtypeOption = Annotated[
    str | None,
    typer.Option(
        "--encoder-dtype",
        help="Encoder compute precision: float32 (default) or bfloat16 (faster on CPUs "
        "with bf16 instructions: 1.4x on an AVX-512 BF16 EPYC, see the README; vectors "
        "the same to cosine 0.999).",
    ),
]
ExistingEncoderOption = Annotated[
    str | None,
    typer.Option(
        "--encoder",
        "-e",
        help="Encoder name or model directory to load instead of the store's recorded one "
        "(it must be the same model); default: the store's own.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

_errors = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 2) -> NoReturn:
    """Report an error on stderr and exit; under ``--json``, also as JSON on stdout.

    Scripts reading ``--json`` output then get one JSON document whatever happens.
    """
    _errors.print(f"[red]error:[/red] {message}")
    if _json_errors[0]:
        typer.echo(json.dumps({"error": message, "exit_code": code}))
    raise typer.Exit(code)


# Whether the running command was given --json; each command sets it first thing.
_json_errors = [False]


def errors_as_json(enabled: bool) -> None:
    _json_errors[0] = enabled


def print_json(console: Console, value: Any) -> None:
    # Plain write, not rich's print_json: no wrapping or colour inside the JSON.
    console.file.write(json.dumps(value, indent=2, default=str) + "\n")
    console.file.flush()


def resolve_encoder(
    spec: str | None, dtype: str | None = None, options: dict[str, Any] | None = None
) -> Encoder | None:
    """Load ``--encoder`` (with loader ``options``, e.g. window settings); None leaves
    the choice to the store (its own, or minilm).

    The store records ``encoder.spec`` so later commands can reopen it without
    ``--encoder``; directory encoders do not always set it, so it is set here.
    """
    if spec is None:
        return None
    from latestore.internal import load_encoder, registered_names

    encoder = load_encoder(spec, **({"dtype": dtype} if dtype else {}), **(options or {}))
    if getattr(encoder, "spec", None) is None:
        recorded = spec if spec in registered_names() else str(Path(spec).expanduser().resolve())
        encoder.spec = recorded  # type: ignore[attr-defined]
    return encoder


def check_exists(target: str) -> None:
    db_file = sqlite_file(to_url(target))
    if db_file is not None and not db_file.exists():
        fail(f"no store at {target} (create one with `latestore ingest`)")


def open_store(
    target: str,
    encoder: str | None,
    dtype: str | None = None,
    *,
    load_index: bool = True,
    window_options: dict[str, Any] | None = None,
) -> Store:
    """Open (or create) a store; ``dtype`` also reaches the store's own recorded encoder.

    ``load_index=False``: for commands that never search, the derived index (and torch)
    stays unloaded. ``window_options`` (``windows``, ``window_stride``,
    ``max_page_tokens``) set a new store's window settings; an existing store keeps
    its own (see :func:`check_window_options`)."""
    resolved = resolve_encoder(encoder, dtype, window_options)
    loader = {**({"dtype": dtype} if dtype else {}), **(window_options or {})}
    options = loader if loader and resolved is None else None
    from latestore.store import Store  # torch and the model stack: only when used

    return Store.open(target, resolved, encoder_options=options, load_index=load_index)


def open_existing(
    target: str, encoder: str | None, dtype: str | None = None, *, load_index: bool = True
) -> Store:
    """Open a store that must already exist (reading commands never create one)."""
    check_exists(target)
    return open_store(target, encoder, dtype, load_index=load_index)


def reencode_settings(
    encoder: Encoder,
    settings: WindowSettings,
    window_stride: int | None,
    max_page_tokens: int,
) -> WindowSettings | Literal["current"]:
    """What ``reindex --re-encode`` asks of ``Store.reencode``: window settings for an
    encoder that reads pages in windows; for one that does not (image models), its
    current settings, and a usage error if window sizes were given."""
    if as_windowed(encoder) is not None:
        return settings
    if window_stride is not None or max_page_tokens != DEFAULT_MAX_PAGE_TOKENS:
        fail(f"encoder {encoder.name!r} does not read pages in windows", code=2)
    return "current"


def window_options(
    windows: bool | None, window_stride: int | None, max_page_tokens: int | None
) -> dict[str, Any]:
    """Loader options from ``--windows/--no-windows``, ``--window-stride`` and
    ``--max-page-tokens``; only those given (the others: the store's, or the defaults)."""
    if windows is False and (window_stride is not None or max_page_tokens is not None):
        fail("--window-stride and --max-page-tokens need windows (drop --no-windows)")
    given = {"windows": windows, "window_stride": window_stride, "max_page_tokens": max_page_tokens}
    return {key: value for key, value in given.items() if value is not None}


def check_window_options(store: Store, requested: dict[str, Any], target: str) -> None:
    """Refuse window settings an existing store was not built with: its pages would be
    encoded two ways. (A new store was just created with them, so they match.)"""
    recorded = store.encoding()["windowing"]
    differs = {k: v for k, v in requested.items() if recorded.get(k) != v}
    if recorded.get("windows") is False and requested.get("windows") is not True:
        differs = {}  # no windows: stride and cap mean nothing (and are refused above)
    if differs:
        fail(
            f"this store reads pages with window settings {recorded}, recorded when it was "
            f"created; asked for {differs}. To switch, re-encode it: `latestore reindex "
            f"--store {target} --re-encode "
            + " ".join(_flag(k, v) for k, v in requested.items())
            + "`"
        )


def _flag(key: str, value: Any) -> str:
    if key == "windows":
        return "--windows" if value else "--no-windows"
    return f"--{key.replace('_', '-')} {value}"


def windows_flag(recorded: dict[str, Any]) -> str:
    """The ``reindex`` flag that keeps a store's recorded window settings."""
    return "--windows" if recorded.get("windows") else "--no-windows"
