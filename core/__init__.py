"""latestore: late-interaction retrieval with a SQL source of truth.

>>> from latestore import Store, Page

Every export is resolved on first use (PEP 562): ``import latestore`` loads neither
SQLAlchemy nor torch, so ``latestore.index`` or ``latestore.errors`` stay cheap to
import and the CLI's ``--help`` answers at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if __name__ != "latestore":  # the repository folder imported under its bare name
    raise ImportError(f"import latestore, not {__name__!r}: see pyproject package-dir")

if TYPE_CHECKING:
    from latestore import errors
    from latestore.config import (
        DeviceConfig,
        HybridConfig,
        IndexConfig,
        MaintenanceConfig,
        MemoryConfig,
        SearchConfig,
        StorageConfig,
    )
    from latestore.encoders import Encoder, PageContent, PrecomputedVectors
    from latestore.errors import (
        DimensionMismatchError,
        DuplicateExternalIdError,
        EmptyPageError,
        EncoderError,
        EncoderMismatchError,
        EncoderNotFoundError,
        EncoderOptionConflictError,
        FilterError,
        IndexSnapshotError,
        InvalidInputError,
        InvalidPageError,
        InvalidVectorError,
        LatestoreError,
        ModelNotCachedError,
        NonFiniteVectorError,
        PageNotFoundError,
        SchemaVersionError,
        ShardUnavailableError,
        StoreBusyError,
        StoreClosedError,
        StoreCorruptionError,
        StoreFullError,
        StoreReadOnlyError,
        StoreUnavailableError,
        UnknownFilterFieldError,
        UnknownFilterOperatorError,
    )
    from latestore.models import (
        Page,
        SearchHit,
        StoreConfig,
        StoredPage,
        StoreStats,
        WrittenPages,
    )
    from latestore.store import Store
    from latestore.store.request import HybridOptions, SearchTuning

__version__ = "0.2.0"

__all__ = [
    "DeviceConfig",
    "DimensionMismatchError",
    "DuplicateExternalIdError",
    "EmptyPageError",
    "Encoder",
    "EncoderError",
    "EncoderMismatchError",
    "EncoderNotFoundError",
    "EncoderOptionConflictError",
    "FilterError",
    "HybridConfig",
    "HybridOptions",
    "IndexConfig",
    "IndexSnapshotError",
    "InvalidInputError",
    "InvalidPageError",
    "InvalidVectorError",
    "LatestoreError",
    "MaintenanceConfig",
    "MemoryConfig",
    "ModelNotCachedError",
    "NonFiniteVectorError",
    "Page",
    "PageContent",
    "PageNotFoundError",
    "PrecomputedVectors",
    "SchemaVersionError",
    "SearchConfig",
    "SearchHit",
    "SearchTuning",
    "ShardUnavailableError",
    "StorageConfig",
    "Store",
    "StoreBusyError",
    "StoreClosedError",
    "StoreConfig",
    "StoreCorruptionError",
    "StoreFullError",
    "StoreReadOnlyError",
    "StoreStats",
    "StoreUnavailableError",
    "StoredPage",
    "UnknownFilterFieldError",
    "UnknownFilterOperatorError",
    "WrittenPages",
    "__version__",
    "errors",
]

# name -> the module that defines it
_EXPORTS: dict[str, str] = {
    **{name: "latestore.errors" for name in __all__ if name.endswith("Error")},
    "Store": "latestore.store",
    "Page": "latestore.models",
    "SearchHit": "latestore.models",
    "StoredPage": "latestore.models",
    "StoreConfig": "latestore.models",
    "DeviceConfig": "latestore.config",
    "HybridConfig": "latestore.config",
    "IndexConfig": "latestore.config",
    "MaintenanceConfig": "latestore.config",
    "MemoryConfig": "latestore.config",
    "SearchConfig": "latestore.config",
    "StorageConfig": "latestore.config",
    "StoreStats": "latestore.models",
    "WrittenPages": "latestore.models",
    "Encoder": "latestore.encoders",
    "PageContent": "latestore.encoders",
    "PrecomputedVectors": "latestore.encoders",
    "SearchTuning": "latestore.store.request",
    "HybridOptions": "latestore.store.request",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name == "errors":
            return importlib.import_module("latestore.errors")
        raise AttributeError(f"module 'latestore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
