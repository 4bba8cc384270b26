"""One exception hierarchy for everything latestore raises on purpose.

Every class also derives from the closest builtin (ValueError, LookupError, ...) so
callers that already catch those keep working.
"""

from __future__ import annotations

from typing import Any


class LatestoreError(Exception):
    """Base class of every error latestore raises deliberately.

    Keyword arguments become attributes that say what went wrong, for programs that
    act on the error rather than print it (``exc.page_ids``, ``exc.field``,
    ``exc.expected`` and ``exc.got``); ``exc.context`` holds them all.
    """

    def __init__(self, message: str = "", **context: Any) -> None:
        super().__init__(message)
        self.context: dict[str, Any] = context
        for name, value in context.items():
            setattr(self, name, value)


class InvalidInputError(LatestoreError, ValueError):
    """Input that cannot be stored or searched; nothing was written."""


class InvalidVectorError(InvalidInputError):
    """Token vectors with the wrong shape, dtype or values."""


class DimensionMismatchError(InvalidVectorError):
    """Vectors whose last dimension differs from the store's (``expected``, ``got``)."""

    expected: int | None = None
    got: int | None = None


class NonFiniteVectorError(InvalidVectorError):
    """Vectors containing NaN or infinity."""


class InvalidPageError(InvalidInputError):
    """A Page with a field of the wrong type or value (wraps pydantic's report)."""


class EmptyPageError(InvalidInputError):
    """A page with no text and no image (or with zero token vectors)."""


class DuplicateExternalIdError(InvalidInputError):
    """The same external id twice in one call, or one already stored where adding
    refuses to replace (``external_ids``)."""

    external_ids: list[str] | None = None


class FilterError(InvalidInputError):
    """A metadata filter that cannot be compiled (``field``, when one is to blame)."""

    field: str | None = None


class UnknownFilterFieldError(FilterError):
    """A filter names a field that no page has."""


class UnknownFilterOperatorError(FilterError):
    """A filter uses an operator latestore does not know."""


class PageNotFoundError(LatestoreError, LookupError):
    """A page id or external id that is not in the store (``page_ids``, ``external_ids``)."""

    page_ids: list[int] | None = None
    external_ids: list[str] | None = None


class EncoderError(LatestoreError):
    """An encoder that cannot be loaded or cannot encode the given input."""


class EncoderMismatchError(EncoderError):
    """The store was built with a different encoder than the one given at open."""


class EncoderOptionConflictError(EncoderMismatchError):
    """An encoder option given at open differs from the one the store was built with."""


class EncoderNotFoundError(EncoderError):
    """The store's encoder is not where the store last found it (a moved folder)."""


class ModelNotCachedError(EncoderError):
    """A hub model that is not in the local cache, and may not be downloaded (offline)."""


class SchemaVersionError(LatestoreError):
    """The database schema was written by a newer (or unknown) latestore version."""


class StoreUnavailableError(LatestoreError, OSError):
    """The database cannot be used: not a database, damaged, or unreachable."""


class StoreFullError(StoreUnavailableError):
    """The disk (or quota) holding the database is full; the write was rolled back."""


class StoreReadOnlyError(StoreUnavailableError):
    """The database cannot be written by this process (read-only file, folder or
    server role); reads still work, the write was refused."""


class StoreBusyError(LatestoreError, TimeoutError):
    """Another writer held the store's write lock for longer than the lock timeout."""


class StoreClosedError(LatestoreError, RuntimeError):
    """An operation on a store that has been closed."""


class IndexSnapshotError(LatestoreError):
    """A derived index file that failed verification, or could not be written.

    The snapshot is derived state: at open a failed one is rebuilt from SQL.
    """


class StoreCorruptionError(LatestoreError):
    """Data in the database itself is damaged (``page_ids``): for example a stored
    vector blob whose size does not match its page's token count. Unlike a snapshot,
    SQL is the source of truth, so nothing can rebuild it: restore from a backup, or
    delete and re-add the pages named."""

    page_ids: list[int] | None = None


class ShardUnavailableError(LatestoreError, RuntimeError):
    """A shard of a distributed store did not answer (dead, restarting past the retry
    budget, or timed out); the search returned nothing rather than a partial ranking."""
