"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import json
from enum import StrEnum
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
        help="Encoder name (minilm), model directory or Hugging Face Hub id (org/name); "
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
        help="Encoder name, model directory or hub id to load instead of the store's "
        "recorded one (the same model, e.g. its folder after a move); default: the "
        "store's own.",
    ),
]
EncoderOptionsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--encoder-option",
        help="key=value for the encoder's loader (repeatable): max_pixels=401408, "
        "query_length=32, pool_factor=2, revision=COMMIT... The store records the "
        "options that change vectors when it is created; later commands need not "
        "repeat them.",
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


def key_values(items: list[str], flag: str, *, scalars_only: bool = False) -> dict[str, Any]:
    """``key=value`` items of ``flag``; a value that parses as JSON keeps its type
    (``year=2024`` is a number). ``scalars_only``: a JSON object or list stays a string."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            fail(f"{flag} expects key=value, got {item!r}")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if scalars_only and isinstance(value, dict | list):
            value = raw
        parsed[key.strip()] = value
    return parsed


def encoder_options(items: list[str] | None, dtype: str | None = None) -> dict[str, Any]:
    """``--encoder-option key=value`` items (and ``--encoder-dtype``) as loader options
    (``max_pixels=401408`` is a number)."""
    options = key_values(items or [], "--encoder-option")
    if dtype:
        options["dtype"] = dtype
    return options


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
    options: list[str] | None = None,
    window_options: dict[str, Any] | None = None,
) -> Store:
    """Open (or create) a store; ``--encoder`` (a name, folder or hub id), its
    ``--encoder-option`` items and ``dtype`` go to Store.open, which loads the encoder
    with the store's recorded options and refuses conflicting ones.

    ``load_index=False``: for commands that never search, the derived index (and torch)
    stays unloaded. ``window_options`` (``windows``, ``window_stride``,
    ``max_page_tokens``) set a new store's window settings; an existing store keeps
    its own (see :func:`check_window_options`)."""
    loader = {**encoder_options(options, dtype), **(window_options or {})}
    from latestore.store import Store  # torch and the model stack: only when used

    return Store.open(target, encoder, encoder_options=loader or None, load_index=load_index)


def open_existing(
    target: str,
    encoder: str | None,
    dtype: str | None = None,
    *,
    load_index: bool = True,
    options: list[str] | None = None,
) -> Store:
    """Open a store that must already exist (reading commands never create one)."""
    check_exists(target)
    return open_store(target, encoder, dtype, load_index=load_index, options=options)


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
    check_recorded_windowing(store.encoding()["windowing"], requested, target)


def recorded_windowing_of(target: str) -> dict[str, Any] | None:
    """An existing store's recorded window settings, read without loading its model
    (None: no store there yet)."""
    from latestore.internal import make_engine, migrate, recorded_windowing, stored_row

    db_file = sqlite_file(to_url(target))
    if db_file is not None and not db_file.exists():
        return None
    engine = make_engine(to_url(target))
    try:
        migrate(engine)
        row = stored_row(engine)
    finally:
        engine.dispose()
    if row is None:
        return None
    return recorded_windowing(row).as_options()


def check_recorded_windowing(
    recorded: dict[str, Any], requested: dict[str, Any], target: str
) -> None:
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
