"""latestore: late-interaction retrieval with a SQL source of truth.

>>> from latestore import Store, Page
"""

from typing import TYPE_CHECKING, Any

from latestore import errors
from latestore.encoders import Encoder, PageContent, PrecomputedVectors
from latestore.models import Page, SearchHit, StoreConfig, StoredPage

if TYPE_CHECKING:
    from latestore.store import Store

__all__ = [
    "Encoder",
    "Page",
    "PageContent",
    "PrecomputedVectors",
    "SearchHit",
    "Store",
    "StoreConfig",
    "StoredPage",
    "errors",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Store brings torch and the index: `import latestore` (and the CLI's --help) stays
    # light until it is used.
    if name == "Store":
        from latestore.store import Store

        return Store
    raise AttributeError(f"module 'latestore' has no attribute {name!r}")
