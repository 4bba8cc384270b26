"""Checks that run before anything is written: vectors, batches, queries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from latestore.errors import (
    DimensionMismatchError,
    DuplicateExternalIdError,
    EmptyPageError,
    InvalidVectorError,
    NonFiniteVectorError,
)
from latestore.index.token_index import MAX_TOKENS_PER_PAGE


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
            f"{what}: vectors have dim {array.shape[1]}, the store uses {dim}"
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
        raise DuplicateExternalIdError(f"external ids repeated in one batch: {dupes[:10]}")
