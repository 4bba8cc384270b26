"""latestore: late-interaction retrieval with a SQL source of truth."""

from latestore import errors

__all__ = ["errors"]
