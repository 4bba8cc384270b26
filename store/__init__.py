"""latestore: late-interaction retrieval with a SQL source of truth.

>>> from latestore import Store, Page
"""

from latestore import errors
from latestore.encoders import Encoder, PageContent, PrecomputedVectors
from latestore.models import Page, SearchHit, StoreConfig, StoredPage
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
