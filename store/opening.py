"""Opening a store: which encoder, which configuration, a new store's config row."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from latestore.encoders import Encoder, default_encoder, superseded_by
from latestore.encoders.windows import WINDOW_OPTIONS, WindowSettings, as_windowed
from latestore.errors import (
    EncoderError,
    EncoderMismatchError,
    EncoderNotFoundError,
    EncoderOptionConflictError,
    InvalidInputError,
)
from latestore.migrations.runner import at_head, upgrade
from latestore.models import BUILD_TIME_FIELDS, StoreConfig
from latestore.store import fulltext
from latestore.store.schema import StoreRow

# Any fixed number: PostgreSQL advisory locks are keyed by a bigint per database.
_PG_CREATE_LOCK = 0x6C61_7465_7374


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision, if it is not there already.

    Checking needs only a read. Upgrading happens under the write lock, taken when
    the transaction begins: on SQLite a deferred transaction that reads and then
    writes fails at once ("database is locked") when another process creates the
    same store at that moment, instead of waiting for it. Two creators then run one
    after the other, and the second finds the schema made.
    """
    with engine.connect() as conn:
        if at_head(conn):
            return
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            _serialise_creators(conn)
            upgrade(conn)


def stored_row(engine: Engine) -> StoreRow | None:
    with Session(engine) as session:
        row = session.get(StoreRow, 1)
        if row is not None:
            session.expunge(row)
        return row


def create_row(engine: Engine, candidate: StoreRow) -> StoreRow:
    """Record ``candidate`` as the store's row, unless another process just did.

    Returns the row that is stored: ``candidate``, or the one that won the race.
    """
    with Session(engine) as session, session.begin():
        session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
        _serialise_creators(session.connection())
        row = session.get(StoreRow, 1)
        if row is None:
            session.add(candidate)
            row = candidate
            # The migration indexed page text with the default analyzer; a new store
            # that chose another gets its index here, in the creating transaction.
            analyzer = candidate.config.get("text_analyzer", fulltext.DEFAULT_ANALYZER)
            if analyzer != fulltext.DEFAULT_ANALYZER:
                fulltext.install(session.connection(), analyzer)
        session.flush()
        session.expunge(row)
    return row


def _serialise_creators(conn: Connection) -> None:
    """On PostgreSQL, the transaction-scoped lock that SQLite's BEGIN IMMEDIATE is."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_CREATE_LOCK})


def resolve_encoder(
    encoder: Encoder | str | Path, options: Mapping[str, Any] | None = None
) -> Encoder:
    """Load a name or checkpoint directory (with loader ``options``); pass objects through."""
    if isinstance(encoder, str | Path):
        try:
            from latestore.encoders.registry import load_encoder
        except ImportError as exc:  # pragma: no cover - registry ships with the package
            raise EncoderError(f"cannot resolve encoder {encoder!r}: {exc}") from exc
        return load_encoder(encoder, **dict(options or {}))
    if options:
        raise InvalidInputError(
            "encoder_options apply when latestore loads the encoder (by name, folder or "
            "the store's record), not to an encoder object"
        )
    return encoder


def new_store_encoder(
    given: Encoder | str | Path | None, options: Mapping[str, Any] | None
) -> Encoder:
    if given is None:
        return resolve_encoder("minilm", options) if options else default_encoder()
    return resolve_encoder(given, options)


def recorded_windowing(row: StoreRow) -> WindowSettings:
    """The window settings a store's pages are encoded with (off for older stores)."""
    return WindowSettings.from_options(row.encoder_windowing or {"windows": False})


def windowing_record(encoder: Encoder) -> dict[str, Any] | None:
    """What a store records of an encoder's window settings (None: it has none)."""
    windowed = as_windowed(encoder)
    return None if windowed is None else windowed.windowing.as_options()


def encoder_for(
    row: StoreRow,
    given: Encoder | str | Path | None,
    options: Mapping[str, Any] | None = None,
) -> Encoder:
    """The encoder to open an existing store with; EncoderMismatchError if it differs.

    The store's recorded build (:func:`build_record`) comes first: its vector options
    are loaded again unless ``options`` restate them, and a hub model is pinned to the
    recorded commit. An option given with another value than the recorded one is
    refused (EncoderOptionConflictError names it and both values).

    Window settings are the store's: an encoder that differs from the store's only in
    them reads pages with the recorded settings (windows off for stores from before
    windows), unless ``options`` set them explicitly. So a store keeps the settings
    its pages were encoded with until ``Store.reencode`` changes them, and nothing is
    ever re-encoded silently.
    """
    encoder = _load_for(row, given, options)
    chosen = set(options or {}) & set(WINDOW_OPTIONS)
    windowed = as_windowed(encoder)
    if windowed is not None and not chosen and not _reads(encoder, row):
        adopted: Any = windowed.with_windowing(recorded_windowing(row))
        if _reads(adopted, row):
            encoder = adopted
    if not _reads(encoder, row) or encoder.dim != row.dim:
        hint = ""
        differences = option_differences(row.encoder_build, getattr(encoder, "build", None))
        if differences:
            hint += f" They differ in: {'; '.join(differences)}."
        if windowed is not None:
            hint += (
                f" The store's pages are encoded with window settings "
                f"{row.encoder_windowing or {'windows': False}}; to change them, run "
                "`latestore reindex --re-encode` (Store.reencode)."
            )
        raise EncoderMismatchError(
            f"store was built with encoder {row.encoder_name!r} (dim {row.dim}, fingerprint "
            f"{row.encoder_fingerprint}); got {encoder.name!r} (dim {encoder.dim}, fingerprint "
            f"{encoder.fingerprint}). Vectors from different models cannot be mixed.{hint}"
        )
    return encoder


def _reads(encoder: Encoder, row: StoreRow) -> bool:
    """Is ``encoder`` the store's, or a later revision of it (see revised_fingerprint)?"""
    recorded = row.encoder_fingerprint
    return encoder.fingerprint == recorded or recorded in superseded_by(encoder)


def check_options(row: StoreRow, options: Mapping[str, Any] | None) -> None:
    """Refuse, at open and before any model loads, options that conflict with the
    store's recorded ones (the encoder itself may load much later, on first use)."""
    recorded = (row.encoder_build or {}).get("options") or {}
    refuse_conflicts(recorded, dict(options or {}), "given")


def _load_for(
    row: StoreRow,
    given: Encoder | str | Path | None,
    options: Mapping[str, Any] | None,
) -> Encoder:
    build = row.encoder_build or {}
    recorded: dict[str, Any] = dict(build.get("options") or {})
    options = dict(options or {})
    check_options(row, options)
    if given is not None and not isinstance(given, str | Path):
        if options:
            return resolve_encoder(given, options)  # refused there: not for objects
        theirs = (getattr(given, "build", None) or {}).get("options")
        if theirs is not None:
            refuse_conflicts(recorded, theirs, "the encoder given has")
        return given
    missing = [k for k in build.get("unrecorded") or [] if k not in options]
    merged = {**recorded, **options}
    if given is not None:
        if build.get("source") == "hub" and str(given) == row.encoder_spec:
            merged.setdefault("revision", build.get("commit"))
        return resolve_encoder(given, merged)
    if missing:
        raise EncoderMismatchError(
            f"this store's encoder was built with option(s) {missing}, whose values a store "
            "cannot record; give them again (Store.open(..., encoder_options=...))"
        )
    spec = row.encoder_spec or ("minilm" if row.encoder_name == "minilm" else None)
    if spec == "minilm" and not merged:
        return default_encoder()
    if spec is None:
        raise EncoderMismatchError(
            f"this store was built with encoder {row.encoder_name!r} "
            f"(fingerprint {row.encoder_fingerprint}); pass it to Store.open"
        )
    if build.get("source") == "hub":
        merged.setdefault("revision", build.get("commit"))
    elif _is_folder_spec(spec) and not Path(spec).is_dir():
        raise EncoderNotFoundError(
            f"this store's encoder {row.encoder_name!r} was loaded from the folder {spec}, "
            "which is not there any more. If the model moved, pass its new folder: "
            "`--encoder NEWDIR` on the command line, or Store.open(..., encoder=NEWDIR) "
            "(or its hub id, org/name); the store's recorded options"
            f"{f' {recorded}' if recorded else ''} are applied to it."
        )
    return resolve_encoder(spec, merged)


def _is_folder_spec(spec: str) -> bool:
    """Stores record a folder as an absolute path; names and hub ids are never absolute."""
    return Path(spec).expanduser().is_absolute()


_DEFAULT = "the family default"


def refuse_conflicts(recorded: Mapping[str, Any], given: Mapping[str, Any], who: str) -> None:
    """EncoderOptionConflictError when ``given`` sets a vector option the store recorded
    with another value (runtime and window options are never conflicts)."""
    from latestore.encoders.build import build_options

    chosen = build_options(dict(given))["options"]
    clashes = [k for k in sorted(chosen) if k in recorded and chosen[k] != recorded[k]]
    if clashes:
        named = "; ".join(
            f"{k}: the store was built with {recorded[k]!r}, {who} {chosen[k]!r}" for k in clashes
        )
        raise EncoderOptionConflictError(
            f"encoder option conflict: {named}. A store keeps the options its vectors were "
            "made with: drop the option to use the store's value (or build a new store)."
        )


def option_differences(
    recorded: Mapping[str, Any] | None, loaded: Mapping[str, Any] | None
) -> list[str]:
    """``"max_pixels: store 50176, given the family default"``, one per differing item of
    two build records (empty when either is unknown)."""
    if not recorded or not loaded:
        return []
    found: list[str] = []
    if recorded.get("source") == "hub" and loaded.get("source") == "hub":
        for key in ("repo_id", "commit"):
            if recorded.get(key) != loaded.get(key):
                found.append(f"{key}: store {recorded.get(key)}, given {loaded.get(key)}")
    mine: Mapping[str, Any] = recorded.get("options") or {}
    theirs: Mapping[str, Any] = loaded.get("options") or {}
    for key in sorted(set(mine) | set(theirs)):
        if mine.get(key, _DEFAULT) != theirs.get(key, _DEFAULT):
            found.append(
                f"{key}: store {mine.get(key, _DEFAULT)!r}, given {theirs.get(key, _DEFAULT)!r}"
            )
    return found


def build_record(encoder: Encoder) -> dict[str, Any] | None:
    """How ``encoder`` was built, as a store records it (None: not by load_encoder)."""
    build = getattr(encoder, "build", None)
    return dict(build) if isinstance(build, dict) else None


def new_store_row(encoder: Encoder, config: StoreConfig) -> StoreRow:
    return StoreRow(
        id=1,
        store_uuid=str(uuid.uuid4()),
        encoder_name=encoder.name,
        encoder_spec=getattr(encoder, "spec", None),
        encoder_fingerprint=encoder.fingerprint,
        encoder_windowing=windowing_record(encoder),
        encoder_build=build_record(encoder),
        dim=encoder.dim,
        vector_dtype=config.storage.vector_dtype,
        config=config.flat(),  # flat names: the record every release reads
        last_change=0,
    )


def merged_config(row: StoreRow, given: StoreConfig | None) -> StoreConfig:
    """Build-time settings from the store; query-time ones from ``given`` or the defaults.

    Query-time settings are not taken from the store, so a store opened by a newer
    latestore gets that version's tuned defaults unless the caller sets them.
    """
    stored = StoreConfig.from_record(row.config)
    given = given or StoreConfig()
    clashes = [
        f for f in BUILD_TIME_FIELDS if given.is_given(f) and given.setting(f) != stored.setting(f)
    ]
    if clashes:
        raise InvalidInputError(
            f"{clashes} are fixed when a store is created (stored: "
            f"{ {f: stored.setting(f) for f in clashes} })"
        )
    merged = given.updated({f: stored.setting(f) for f in BUILD_TIME_FIELDS})
    if merged.search.window_scoring is None:  # stores from before the setting: the union
        merged = merged.updated({"window_scoring": stored.search.window_scoring or "union"})
    return merged


def new_store_config(given: StoreConfig | None) -> StoreConfig:
    """A new store's settings, with the window scoring it records resolved."""
    config = given or StoreConfig()
    if config.search.window_scoring is None:
        config = config.updated({"window_scoring": "best"})
    return config
