"""The internal layer: what the front ends (cli/, serve/, ingest/, integrations/,
distributed/) may use beyond the public API. Not public: it can change in any release.

docs/boundary.md says why each name is here; tests/test_boundary.py fails when a
front end imports a store, index or encoder module directly instead. Every name is
resolved on first use (PEP 562), so importing this module costs nothing and each
caller pays only for the module it asks for, as before the layer existed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from latestore.encoders.registry import load_encoder, registered_names
    from latestore.encoders.windows import (
        DEFAULT_MAX_PAGE_TOKENS,
        EncodedPage,
        WindowSettings,
        as_windowed,
    )
    from latestore.index.late_index import LateInteractionIndex
    from latestore.index.plan import PageIds, Queries
    from latestore.index.ranking import Ranking, SearchParams
    from latestore.store.encoded import encode_counted
    from latestore.store.filters import any_of
    from latestore.store.footprint import directory_bytes, sqlite_bytes
    from latestore.store.images import MAX_IMAGE_PIXELS, UnreadableImageError, load_image
    from latestore.store.opening import (
        encoder_for,
        merged_config,
        migrate,
        new_store_encoder,
        recorded_windowing,
        stored_row,
    )
    from latestore.store.page_encoding import Query, query_vectors
    from latestore.store.reader import still_stored
    from latestore.store.request import MAX_K
    from latestore.store.rwlock import ReadWriteLock
    from latestore.store.schema import PageVectorsRow, StoreRow
    from latestore.store.sql import make_engine, sqlite_file, to_url
    from latestore.store.sync import IndexSync
    from latestore.store.validation import checked_vectors
    from latestore.torch_use import declare_one_shot_process

# home module -> the names it lends the front ends (grouped as docs/boundary.md is)
_HOMES: dict[str, tuple[str, ...]] = {
    # Addresses and sizes of a store
    "latestore.store.sql": ("make_engine", "sqlite_file", "to_url"),
    "latestore.store.footprint": ("directory_bytes", "sqlite_bytes"),
    # Encoders by name, and long pages cut into windows
    "latestore.encoders.registry": ("load_encoder", "registered_names"),
    "latestore.encoders.windows": (
        "DEFAULT_MAX_PAGE_TOKENS",
        "EncodedPage",
        "WindowSettings",
        "as_windowed",
    ),
    # Input checks and reads shared with the facade
    "latestore.store.images": ("MAX_IMAGE_PIXELS", "UnreadableImageError", "load_image"),
    "latestore.store.validation": ("checked_vectors",),
    "latestore.store.reader": ("still_stored",),
    "latestore.store.filters": ("any_of",),
    "latestore.store.request": ("MAX_K",),
    # What the Ray workers and shards build on (distributed/)
    "latestore.store.opening": (
        "encoder_for",
        "merged_config",
        "migrate",
        "new_store_encoder",
        "recorded_windowing",
        "stored_row",
    ),
    "latestore.store.page_encoding": ("Query", "query_vectors"),
    "latestore.store.encoded": ("encode_counted",),
    "latestore.store.rwlock": ("ReadWriteLock",),
    "latestore.store.schema": ("PageVectorsRow", "StoreRow"),
    "latestore.store.sync": ("IndexSync",),
    "latestore.index.late_index": ("LateInteractionIndex",),
    "latestore.index.plan": ("PageIds", "Queries"),
    "latestore.index.ranking": ("Ranking", "SearchParams"),
    "latestore.torch_use": ("declare_one_shot_process",),
}

_HOME_OF: dict[str, str] = {name: home for home, names in _HOMES.items() for name in names}

__all__ = [
    "DEFAULT_MAX_PAGE_TOKENS",
    "MAX_IMAGE_PIXELS",
    "MAX_K",
    "EncodedPage",
    "IndexSync",
    "LateInteractionIndex",
    "PageIds",
    "PageVectorsRow",
    "Queries",
    "Query",
    "Ranking",
    "ReadWriteLock",
    "SearchParams",
    "StoreRow",
    "UnreadableImageError",
    "WindowSettings",
    "any_of",
    "as_windowed",
    "checked_vectors",
    "declare_one_shot_process",
    "directory_bytes",
    "encode_counted",
    "encoder_for",
    "load_encoder",
    "load_image",
    "make_engine",
    "merged_config",
    "migrate",
    "new_store_encoder",
    "query_vectors",
    "recorded_windowing",
    "registered_names",
    "sqlite_bytes",
    "sqlite_file",
    "still_stored",
    "stored_row",
    "to_url",
]


def __getattr__(name: str) -> Any:
    home = _HOME_OF.get(name)
    if home is None:
        raise AttributeError(f"module 'latestore.internal' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
