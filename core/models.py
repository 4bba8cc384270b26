"""Public records: what goes in (Page), what comes out (SearchHit), and store config."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from latestore.deprecation import warn_deprecated
from latestore.errors import EmptyPageError, InvalidPageError

if TYPE_CHECKING:  # the index brings FAISS; the records are imported without it
    from latestore.index.ranking import SearchParams
    from latestore.index.token_index import IndexParams

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


class StoreConfig(BaseModel):
    """Build-time and query-time settings, recorded in the store at creation.

    Query-time fields may be changed at any open, or per search call; build-time fields
    (``BUILD_TIME_FIELDS``) are fixed once the store exists. Each field's description
    says what it does; the README's tuning section says when to change it.
    """

    model_config = ConfigDict(extra="forbid")

    vector_dtype: Literal["float16", "float32", "int8"] = Field(
        default="float16",
        description="How token vectors are stored in SQL (build time). int8 keeps one "
        "byte per dimension plus a float32 scale per token.",
    )
    tier: Literal["full", "compact", "compact-only"] = Field(
        default="full",
        description="Storage tier (build time). full: candidates from FAISS, ranks over "
        "the rerank copy. compact: residual codes (compact_bits per dimension over "
        "k-means centroids) find and score candidates; the final n_rerank pages are "
        "scored exactly on full-precision vectors read from SQL for them. compact-only: "
        "SQL keeps only the codes; final scores are exact MaxSim over the decoded codes. "
        "See docs/compact-tier.md.",
    )
    compact_bits: Literal[1, 2, 4] = Field(
        default=2,
        description="Bits per dimension of a compact tier's residual codes (build time).",
    )
    memory_dtype: Literal["float16", "float32", "int8"] | None = Field(
        default=None,
        description="How the exact rerank holds vectors in RAM; None: as stored. "
        "float32 doubles the memory to skip a conversion per query.",
    )
    vector_cache: Literal["memory", "disk"] = Field(
        default="disk",
        description="Where the rerank's copy of the page vectors lives: the heap, or "
        "disk: a persisted, verified file in the index folder, memory-mapped, so opening "
        "reads only what changed since it was written and resident memory stays flat as "
        "the store grows (unlinked scratch files for a store without an index folder; "
        "see docs/vector-file.md).",
    )
    candidate_search: Literal["auto", "faiss", "torch"] = Field(
        default="auto",
        description="Candidate token search: the persisted FAISS index (FAISS GPU when "
        "installed), torch (exact matmul and top-k over all tokens on the rerank "
        "device), or auto: torch on CUDA without a FAISS GPU build, else FAISS.",
    )
    device_exact: bool = Field(
        default=True,
        description="On a GPU with the fused kernel, rank by exact MaxSim over every "
        "allowed page (they are resident, so a query reads them once at memory speed) "
        "instead of through candidates.",
    )
    device_precision: Literal["exact", "fast"] = Field(
        default="exact",
        description="Query precision of the GPU kernel. exact: float32 queries as two "
        "float16 halves, scores within about 2e-7 of float64; fast: one float16 "
        "product, about 2e-5 relative. The CPU is always exact.",
    )
    device_budget_mb: int = Field(
        default=512,
        ge=1,
        description="Largest temporary memory one search may take on the device, in "
        "MiB, whatever the number of queries, query tokens or pages.",
    )
    device_memory_share: float = Field(
        default=0.7,
        gt=0.0,
        le=0.95,
        description="Share of the device's memory the resident page matrix may take; "
        "past it the store ranks through candidates from the host copy.",
    )
    ivf_min_tokens: int = Field(
        default=100_000,
        ge=1,
        description="Token count from which the candidate index is an IVF (build time); "
        "below it, a flat index.",
    )
    ivf_nlist: int | None = Field(
        default=None,
        ge=1,
        description="IVF lists (build time); None: about the square root of the tokens.",
    )
    ivf_codec: Literal["PQ", "SQ8", "SQfp16", "Flat", "none"] = Field(
        default="PQ",
        description="How the IVF compresses token vectors (build time); none: always flat.",
    )
    k_per_token: int = Field(
        default=128,
        ge=1,
        le=65_536,
        description="Nearest page tokens fetched per query token by the candidate search.",
    )
    nprobe: int = Field(default=16, ge=1, description="IVF lists searched per query token.")
    n_rerank: int = Field(
        default=256,
        ge=1,
        description="Candidate pages scored by exact MaxSim after the approximate ranking.",
    )
    widen_above_tokens: int = Field(
        default=1_000_000,
        ge=0,
        description="Past this many tokens (those a query may see), k_per_token grows "
        "with the square root of the growth and n_rerank with its fourth root, so "
        "quality holds as the store grows (4x and 2x at 16M tokens); 0 keeps them fixed.",
    )
    exhaustive_max_tokens: int = Field(
        default=60_000,
        ge=0,
        description="When the pages a query may see hold at most this many tokens, all "
        "of them are scored exactly instead of through candidates.",
    )
    snapshot_every_tokens: int = Field(
        default=250_000,
        ge=1,
        description="Tokens written between snapshots of the derived index (at least).",
    )
    snapshot_every_fraction: float = Field(
        default=0.1,
        ge=0.0,
        le=10.0,
        description="Also wait for this fraction of the store's tokens between "
        "snapshots: a snapshot is rewritten whole, so a fixed interval alone would make "
        "total snapshot writes grow with the square of the store's size.",
    )
    change_log_keep: int = Field(
        default=10_000,
        ge=0,
        description="Write transactions whose change-log rows are kept after they are "
        "in a snapshot; another process whose index is older reloads it from SQL.",
    )
    text_analyzer: str = Field(
        default="english",
        pattern=r"^[a-z][a-z0-9_]{0,62}$",
        description="Full-text analyzer of page text (build time): english (stemmed), "
        "simple (unstemmed); trigram on SQLite; any text search configuration on "
        "PostgreSQL.",
    )
    search_mode: Literal["maxsim", "hybrid", "lexical"] = Field(
        default="maxsim",
        description="Ranking used when search() is given no mode.",
    )
    fusion: Literal["convex", "rrf", "weighted"] = Field(
        default="convex",
        description="Hybrid fusion: normalised scores mixed with a lexical share set per "
        "query by the rankings' agreement (convex), reciprocal-rank fusion, or a fixed "
        "weighted sum of normalised scores.",
    )
    lexical_weight: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Hybrid: the lexical ranking's share (convex: its largest share); "
        "None is the rule's default (convex 0.9; rrf and weighted 0.5, plain RRF or an "
        "even sum).",
    )
    rrf_k: int = Field(default=60, ge=1, description="Hybrid: the RRF rank offset.")
    window_scoring: Literal["best", "union"] | None = Field(
        default=None,
        description="How a page encoded in several windows scores. best: its best "
        "window's exact MaxSim, over the rows the page stores for that window (no "
        "long-page bias; docs/ranking-quality.md); union: MaxSim over all its windows' "
        "rows. None: the store's recorded choice: best for a store created with this "
        "release, union for older stores. A store "
        "records the value it is created with; a value given at open applies to that "
        "session. Pages written before revision 0008 score as the union either way "
        "until re-encoded.",
    )
    hybrid_depth: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Hybrid: pages taken from each ranking before fusion (at least k).",
    )

    def index_params(self) -> IndexParams:
        from latestore.index.token_index import IndexParams

        return IndexParams(
            ivf_min_tokens=self.ivf_min_tokens, ivf_nlist=self.ivf_nlist, ivf_codec=self.ivf_codec
        )

    def search_params(self) -> SearchParams:
        from latestore.index.ranking import SearchParams

        return SearchParams(
            k_per_token=self.k_per_token,
            nprobe=self.nprobe,
            n_rerank=self.n_rerank,
            widen_above_tokens=self.widen_above_tokens,
            exhaustive_max_tokens=self.exhaustive_max_tokens,
            device_exact=self.device_exact,
            device_precision=self.device_precision,
        )


BUILD_TIME_FIELDS = (
    "vector_dtype",
    "ivf_min_tokens",
    "ivf_nlist",
    "ivf_codec",
    "text_analyzer",
    "tier",
    "compact_bits",
)
