"""Public records: what goes in (Page), what comes out (SearchHit), and store config."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from latestore.config import (
    BUILD_TIME_FIELDS,
    DeviceConfig,
    HybridConfig,
    IndexConfig,
    MaintenanceConfig,
    MemoryConfig,
    SearchConfig,
    StorageConfig,
    StoreConfig,
)
from latestore.deprecation import warn_deprecated
from latestore.errors import EmptyPageError, InvalidPageError

# StoreConfig and its groups live in latestore.config; importable from here as before.
__all__ = [
    "BUILD_TIME_FIELDS",
    "MAX_METADATA_BYTES",
    "DeviceConfig",
    "HybridConfig",
    "IndexConfig",
    "JSONScalar",
    "MaintenanceConfig",
    "MemoryConfig",
    "Metadata",
    "Page",
    "PageRecord",
    "SearchConfig",
    "SearchHit",
    "StorageConfig",
    "StoreConfig",
    "StoreStats",
    "StoredPage",
    "WrittenPages",
]

JSONScalar = str | int | float | bool | None
Metadata = dict[str, Any]

MAX_METADATA_BYTES = 64 * 1024


class Page(BaseModel):
    """One page to index: text, an image, or both; optionally precomputed vectors.

    Examples
    --------
    >>> Page(text="MaxSim sums per-token maxima.", document_id="notes", page_number=1).text
    'MaxSim sums per-token maxima.'
    """

    # defer_build: a model's validator is built at its first use, not at import; a
    # one-off command (a search: SearchHit only) skips the ones it never builds.
    model_config = ConfigDict(
        extra="forbid", arbitrary_types_allowed=True, frozen=True, defer_build=True
    )

    text: str | None = None
    image: bytes | None = Field(default=None, repr=False)
    image_path: Path | None = None
    external_id: str | None = Field(default=None, min_length=1, max_length=512)
    document_id: str | None = Field(default=None, max_length=512)
    # The column is a 32-bit INTEGER on PostgreSQL: a larger number is refused here, not
    # by the database at insert time with a raw error.
    page_number: int | None = Field(default=None, ge=0, le=2**31 - 1)
    source: str | None = None
    metadata: Metadata = Field(default_factory=dict)
    vectors: npt.NDArray[Any] | None = Field(default=None, repr=False)

    def __init__(self, **data: Any) -> None:
        # Page errors belong to latestore's hierarchy (InvalidPageError is a ValueError,
        # like pydantic's), so one `except LatestoreError` covers every bad input.
        try:
            super().__init__(**data)
        except ValidationError as exc:
            if any(
                e.get("ctx", {}).get("error") and "needs text" in str(e["ctx"]["error"])
                for e in exc.errors()
            ):
                raise EmptyPageError(
                    "a page needs text, an image or image_path, or vectors"
                ) from exc
            raise InvalidPageError(str(exc)) from exc

    @field_validator("text", "external_id", "document_id", "source")
    @classmethod
    def _storable_text(cls, value: str | None) -> str | None:
        if value is not None:
            _check_storable(value)
        return value

    @field_validator("metadata")
    @classmethod
    def _json_metadata(cls, value: Metadata) -> Metadata:
        try:
            # ensure_ascii=False + encode: lone surrogates fail here, not in the database.
            blob = json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata must be JSON-serialisable without NaN/inf: {exc}") from exc
        except RecursionError as exc:
            raise ValueError("metadata nests too deeply to store") from exc
        if len(blob) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is {len(blob)} bytes; the limit is {MAX_METADATA_BYTES}")
        for key in value:
            if not key or len(key) > 256:
                raise ValueError("metadata keys must be 1 to 256 characters")
            # A filter addresses a key through a JSON path ('$."key"' in SQLite), which
            # has no escape for these: such a key could be stored but never filtered on.
            if any(ch in key for ch in '"\\') or any(ord(ch) < 32 for ch in key):
                raise ValueError(
                    f"metadata key {key[:80]!r} contains a quote, backslash or control character"
                )
        nul = _nul_path(value)
        if nul is not None:
            # PostgreSQL's JSON keeps "\u0000" but cannot read it back as text: a filter on
            # the key then fails for every page. Refused on both backends alike.
            raise ValueError(f"metadata {nul} contains a NUL character")
        return value

    @field_validator("vectors", mode="before")
    @classmethod
    def _as_array(cls, value: Any) -> Any:
        return None if value is None else np.asarray(value)

    @model_validator(mode="after")
    def _has_content(self) -> Page:
        # Blank text is no content: no encoder can make a token of it (the CLI skips
        # such pages as blank). With vectors given, the text is only stored.
        blank = self.text is None or not self.text.strip()
        no_content = blank and self.image is None and self.image_path is None
        if no_content and self.vectors is None:
            raise ValueError(
                "a page needs text (not empty or blank), an image or image_path, or vectors"
            )
        return self

    def content_hash(self) -> str:
        """sha256 over everything that defines the page's content (not its metadata)."""
        digest = hashlib.sha256()
        digest.update(b"text\0" + (self.text or "").encode("utf-8", "surrogatepass"))
        digest.update(b"\0image\0" + (self.image or b""))
        if self.image_path is not None and self.image is None:
            digest.update(b"\0path\0" + str(self.image_path).encode())
        if self.vectors is not None:
            digest.update(b"\0vectors\0" + np.ascontiguousarray(self.vectors).tobytes())
        return digest.hexdigest()


def _nul_path(metadata: Metadata) -> str | None:
    """Where the first NUL character in ``metadata`` (keys or string values, at any
    depth) is, as ``key[0].inner``; None when there is none. Iterative: the depth of
    metadata is bounded by its size only."""
    stack: list[tuple[str, str, Any]] = [(key, key, item) for key, item in metadata.items()]
    while stack:
        path, key, item = stack.pop()
        if "\x00" in key or (isinstance(item, str) and "\x00" in item):
            return repr(path[:120])
        if isinstance(item, dict):
            stack.extend((f"{path}.{k}", str(k), v) for k, v in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}[{i}]", "", v) for i, v in enumerate(item))
    return None


def _check_storable(value: str) -> None:
    """Text every backend can store: UTF-8 encodable, and no NUL (PostgreSQL refuses it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"text is not valid Unicode (lone surrogate at position {exc.start})"
        ) from exc
    if "\x00" in value:
        raise ValueError(f"text contains a NUL character at position {value.index(chr(0))}")


class PageRecord(BaseModel):
    """The stored fields of one page, as search hits and ``Store.get`` return them."""

    model_config = ConfigDict(frozen=True, defer_build=True)  # as Page

    page_id: int
    external_id: str | None = None
    document_id: str | None = None
    page_number: int | None = None
    text: str | None = None
    source: str | None = None
    image_path: Path | None = None
    has_image: bool = False
    metadata: Metadata = Field(default_factory=dict)


class SearchHit(PageRecord):
    """One ranked page: its stored fields, its ``score`` and 1-based ``rank``.

    ``score`` is the search mode's own: exact MaxSim (``"maxsim"``), the full-text
    engine's score (``"lexical"``) or the fused score (``"hybrid"``, see
    :mod:`latestore.index.fusion`). ``signals`` names the rankings the page came from,
    with each one's score.
    """

    model_config = ConfigDict(defer_build=False)  # every search builds it: no gain

    score: float
    rank: int
    signals: tuple[str, ...] = ()
    maxsim_score: float | None = None
    lexical_score: float | None = None
    lexical_rank: int | None = None


class StoredPage(PageRecord):
    """A page as read back with ``Store.get``: no score, but its hash and token count."""

    content_hash: str
    n_tokens: int
    text_tokens: int | None = None  # the page text's tokens before any cut (None: unknown)
    tokens_dropped: int | None = None  # tokens the encoder's length or page cap cut

    @property
    def score(self) -> float:
        """Deprecated: a stored page has no score (StoredPage was once a SearchHit)."""
        warn_deprecated(
            "StoredPage.score is always 0 and will be removed; a stored page has no score"
        )
        return 0.0

    @property
    def rank(self) -> int:
        """Deprecated: a stored page has no rank (StoredPage was once a SearchHit)."""
        warn_deprecated(
            "StoredPage.rank is always 0 and will be removed; a stored page has no rank"
        )
        return 0


class WrittenPages(list[int]):
    """What ``add_pages`` / ``upsert_pages`` return: the page ids, in input order, plus
    how many of the pages the call ``added``, ``updated`` in place, or found stored
    identically and left ``unchanged``. Counted inside the write transaction, so a page
    another writer stored first is counted as what this call did to it."""

    def __init__(
        self, ids: Iterable[int] = (), *, added: int = 0, updated: int = 0, unchanged: int = 0
    ) -> None:
        super().__init__(ids)
        self.added = added
        self.updated = updated
        self.unchanged = unchanged

    def extend_with(self, more: WrittenPages) -> None:
        """Append another batch's ids and counts (a streamed write)."""
        self.extend(more)
        self.added += more.added
        self.updated += more.updated
        self.unchanged += more.unchanged

    def __repr__(self) -> str:
        return (
            f"WrittenPages({list.__repr__(self)}, added={self.added}, "
            f"updated={self.updated}, unchanged={self.unchanged})"
        )


class StoreStats(BaseModel):
    """What ``Store.stats()`` reports: contents, encoder, index and where ranking runs."""

    model_config = ConfigDict(frozen=True, defer_build=True)  # as Page

    pages: int = Field(description="Pages in the store.")
    documents: int = Field(description="Distinct document ids (pages without one: none).")
    pages_with_image: int = Field(description="Pages whose image bytes are stored.")
    image_bytes: int = Field(description="Bytes of the stored page images.")
    tokens: int = Field(description="Token vectors over all pages.")
    dim: int = Field(description="Dimensions per token vector.")
    vector_dtype: str = Field(description="How vectors are stored in SQL.")
    memory_dtype: str = Field(description="How the rerank holds vectors in memory.")
    vector_cache: Literal["memory", "disk"] = Field(description="Where that copy lives.")
    vector_cache_fallback: str | None = Field(
        default=None,
        description="Why a disk vector cache holds pages in memory instead (its folder "
        "could not be written: full, read-only, no permission); None when it does not.",
    )
    encoder: str = Field(description="The encoder's name.")
    encoder_fingerprint: str = Field(description="Identity of the encoder and its settings.")
    index: dict[str, Any] = Field(description="The candidate index: kind, tokens, pages, IVF.")
    candidate_search: Literal["faiss", "torch"] = Field(description="Candidate token search.")
    search_plan: str = Field(description="How a search with the stored settings ranks.")
    device: str = Field(description="Where ranking runs: cpu, or the device holding pages.")
    device_dtype: str | None = Field(default=None, description="Element type on the device.")
    device_bytes_per_token: int | None = Field(default=None, description="Per token there.")
    device_resident_bytes: int | None = Field(default=None, description="Device bytes held.")
    device_capacity_per_token: float | None = Field(
        default=None, description="Resident bytes per token held, padding included."
    )
    change_no: int = Field(description="The last change of the database this index reflects.")
    change_log_pruned_through: int = Field(description="Changes pruned from the log so far.")
    index_dir: str | None = Field(description="Folder of the index snapshot, if any.")

    def __getitem__(self, name: str) -> Any:
        warn_deprecated(
            f"stats()[{name!r}] is deprecated; stats() returns a StoreStats: use .{name}"
        )
        return getattr(self, name)
