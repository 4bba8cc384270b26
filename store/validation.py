"""Checks that run before anything is written: vectors, batches, queries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from latestore.errors import (
    DimensionMismatchError,
    DuplicateExternalIdError,
    EmptyPageError,
    InvalidInputError,
    InvalidVectorError,
    NonFiniteVectorError,
)
from latestore.index.token_ids import MAX_TOKENS_PER_PAGE


def checked_vectors(raw: Any, dim: int, dtype: str, what: str) -> npt.NDArray[np.floating]:
    """Validate ``(n_tokens, dim)`` vectors, L2-normalise them, cast to the store dtype.

    Raises a typed error naming ``what`` (a page or query) for a wrong shape or dim,
    no tokens, too many tokens, NaN/inf, or an all-zero vector (which has no direction
    and would match nothing).
    """
    try:
        array = np.asarray(raw)
    except (TypeError, ValueError) as exc:
        raise InvalidVectorError(f"{what}: vectors are not an array: {exc}") from exc
    if array.dtype.kind not in "fiu":
        raise InvalidVectorError(f"{what}: vectors must be numeric, got dtype {array.dtype}")
    if array.ndim != 2:
        raise InvalidVectorError(
            f"{what}: vectors must be 2-D (tokens, dim), got shape {array.shape}"
        )
    if array.shape[1] != dim:
        raise DimensionMismatchError(
            f"{what}: vectors have dim {array.shape[1]}, the store uses {dim}",
            expected=dim,
            got=int(array.shape[1]),
        )
    if array.shape[0] == 0:
        raise EmptyPageError(f"{what}: has 0 token vectors")
    if array.shape[0] >= MAX_TOKENS_PER_PAGE:
        raise InvalidVectorError(
            f"{what}: {array.shape[0]} tokens; at most {MAX_TOKENS_PER_PAGE - 1}"
        )
    with np.errstate(over="ignore"):  # an overflow becomes inf, refused just below
        array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise NonFiniteVectorError(f"{what}: vectors contain NaN or infinity")
    norms = np.linalg.norm(array.astype(np.float64), axis=1, keepdims=True)
    if (norms == 0).any():
        raise InvalidVectorError(f"{what}: contains an all-zero vector")
    # int8 is quantised when stored (latestore.index.codec); until then it stays float32.
    normalised: npt.NDArray[np.floating] = (array / norms).astype(
        np.float32 if dtype == "int8" else dtype
    )
    if not np.isfinite(normalised).all():  # pragma: no cover - unit vectors always fit fp16
        raise NonFiniteVectorError(f"{what}: vectors overflow {dtype}")
    return normalised


def check_unique_external_ids(external_ids: Sequence[str | None]) -> None:
    counts = Counter(e for e in external_ids if e is not None)
    dupes = sorted(e for e, n in counts.items() if n > 1)
    if dupes:
        raise DuplicateExternalIdError(
            f"external ids repeated in one batch: {dupes[:10]}", external_ids=dupes
        )


# Page ids are positive and fit PostgreSQL's INTEGER column: an id outside this range
# names no page, and asking the database about it would fail to bind or overflow.
MAX_PAGE_ID = 2**31 - 1


def checked_ids(ids: Any, what: str) -> list[int]:
    """``ids`` as a list of ints; InvalidInputError for None, a string or a non-integer."""
    if ids is None or isinstance(ids, str | bytes) or not isinstance(ids, Iterable):
        raise InvalidInputError(f"{what} takes a list of integer page ids, got {ids!r:.80}")
    out = []
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise InvalidInputError(f"{what}: page ids are integers, got {value!r:.80}")
        out.append(int(value))
    return out


def checked_external_ids(external_ids: Any, what: str) -> list[str]:
    if external_ids is None or isinstance(external_ids, str | bytes):
        raise InvalidInputError(f"{what} takes a list of external ids, got {external_ids!r:.80}")
    if not isinstance(external_ids, Iterable):
        raise InvalidInputError(f"{what} takes a list of external ids, got {external_ids!r:.80}")
    out = list(external_ids)
    for value in out:
        if not isinstance(value, str):
            raise InvalidInputError(f"{what}: external ids are strings, got {value!r:.80}")
        check_unicode(value, f"{what}: external id")
    return out


def check_unicode(value: str, what: str) -> None:
    """InvalidInputError for text that is not valid Unicode (a lone surrogate): no
    database driver can send it, and the builtin UnicodeEncodeError would escape."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{what} {value!r:.80} is not valid Unicode (lone surrogate at position {exc.start})"
        ) from exc


def storable(value: str) -> bool:
    """Whether ``value`` could be stored at all. Text with NUL is refused on write (for
    PostgreSQL, whose text cannot hold it), so looking it up finds nothing, and must not
    reach PostgreSQL, which fails the query instead of answering "no match"."""
    return "\x00" not in value


def check_query_texts(texts: Sequence[str]) -> None:
    """Refuse empty queries and text that is not valid Unicode (a lone surrogate)."""
    for text in texts:
        if not text.strip():
            raise InvalidInputError("a query is empty")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInputError(f"a query is not valid Unicode: {exc}") from exc
