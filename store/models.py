"""Public records: what goes in (Page), what comes out (SearchHit), and store config."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from latestore.errors import EmptyPageError, InvalidPageError
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

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)

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


class SearchHit(BaseModel):
    """One ranked page."""

    model_config = ConfigDict(frozen=True)

    page_id: int
    score: float
    rank: int
    external_id: str | None = None
    document_id: str | None = None
    page_number: int | None = None
    text: str | None = None
    source: str | None = None
    image_path: str | None = None
    has_image: bool = False
    metadata: Metadata = Field(default_factory=dict)
    # Which rankings the page came from ("maxsim", "lexical"), and each one's score.
    # In "maxsim" mode score is maxsim_score; in "lexical" mode lexical_score; in
    # "hybrid" mode the fused score (see latestore.index.fusion).
    signals: tuple[str, ...] = ()
    maxsim_score: float | None = None
    lexical_score: float | None = None
    lexical_rank: int | None = None


class StoredPage(SearchHit):
    """A page as read back with ``Store.get`` (score and rank are 0)."""

    content_hash: str
    n_tokens: int


class StoreConfig(BaseModel):
    """Build-time and query-time settings, recorded in the store at creation.

    Query-time fields (``k_per_token``, ``nprobe``, ``n_rerank``,
    ``exhaustive_max_tokens``) may be changed at any open; build-time fields are
    fixed once the store exists.
    """

    model_config = ConfigDict(extra="forbid")

    vector_dtype: Literal["float16", "float32", "int8"] = "float16"
    # How the rerank keeps vectors in RAM; None = as stored. float32 doubles memory and
    # skips the half->float conversion per query: with cache-sized chunks that saves
    # little (1000x1024x128 rerank 96-116 ms float16 vs 87-108 ms float32, 2-core CPU).
    memory_dtype: Literal["float16", "float32", "int8"] | None = None
    # Where the rerank's copy of the page vectors lives: the heap ("memory"), or mapped
    # scratch files beside the index ("disk"), which the kernel pages in per query and
    # may evict, so resident memory stays flat as the store grows.
    vector_cache: Literal["memory", "disk"] = "memory"
    # Candidate token search: "faiss" (the persisted IVF/flat index, FAISS GPU when
    # installed), "torch" (exact matmul + top-k over all tokens on the rerank device),
    # or "auto": torch on CUDA when the installed faiss has no GPU support, else faiss.
    candidate_search: Literal["auto", "faiss", "torch"] = "auto"
    # On a GPU with the fused kernel, rank by exact MaxSim over every allowed page (the
    # pages are resident, so a query reads them once at memory speed) rather than by
    # candidates. The candidate path stays for CPUs, stores larger than the device's
    # share of memory (device_memory_share), and device_exact=False.
    device_exact: bool = True
    # The GPU kernel's query precision. "exact": float32 queries as two float16 halves,
    # scores within ~2e-7 of float64; "fast": one float16 product (~2e-5 relative, as
    # the peer kernels), up to 1.25x faster on short pages. The CPU is always exact.
    device_precision: Literal["exact", "fast"] = "exact"
    # Largest temporary memory one search may take on the device, in MiB, whatever the
    # number of queries, query tokens or pages.
    device_budget_mb: int = Field(default=512, ge=1)
    # Share of the device's memory the resident page matrix may take.
    device_memory_share: float = Field(default=0.7, gt=0.0, le=0.95)
    ivf_min_tokens: int = Field(default=100_000, ge=1)
    ivf_nlist: int | None = Field(default=None, ge=1)
    ivf_codec: Literal["PQ", "SQ8", "SQfp16", "Flat", "none"] = "PQ"
    k_per_token: int = Field(default=128, ge=1, le=65_536)
    nprobe: int = Field(default=16, ge=1)
    n_rerank: int = Field(default=256, ge=1)
    exhaustive_max_tokens: int = Field(default=60_000, ge=0)
    # The snapshot is rewritten whole, so a fixed interval would make total snapshot
    # writes grow with the square of the store's size. Waiting also for a fraction of
    # the store bounds them to about (1 + 1/fraction) times the final snapshot, at the
    # price of replaying up to that fraction of tokens at the next open.
    snapshot_every_tokens: int = Field(default=250_000, ge=1)
    snapshot_every_fraction: float = Field(default=0.1, ge=0.0, le=10.0)
    # Write transactions whose change-log rows are kept after they are in a snapshot.
    # Another process whose index is older than the kept log reloads it from SQL.
    change_log_keep: int = Field(default=10_000, ge=0)
    # Full-text analyzer of page text (build time): "english" (stemmed), "simple"
    # (unstemmed); "trigram" on SQLite; any text search configuration on PostgreSQL.
    text_analyzer: str = Field(default="english", pattern=r"^[a-z][a-z0-9_]{0,62}$")
    # Ranking used when search() is not given a mode; see latestore.hybrid.
    search_mode: Literal["maxsim", "hybrid", "lexical"] = "maxsim"
    # Hybrid: "rrf" (reciprocal-rank fusion) or "weighted" (min-max normalised scores).
    fusion: Literal["rrf", "weighted"] = "rrf"
    # Hybrid: the lexical ranking's share; 0.5 is plain RRF / an even weighted sum.
    lexical_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    rrf_k: int = Field(default=60, ge=1)
    # Hybrid: pages taken from each ranking before fusion (at least k).
    hybrid_depth: int = Field(default=100, ge=1, le=10_000)

    def index_params(self) -> IndexParams:
        return IndexParams(
            ivf_min_tokens=self.ivf_min_tokens, ivf_nlist=self.ivf_nlist, ivf_codec=self.ivf_codec
        )

    def search_params(self) -> SearchParams:
        return SearchParams(
            k_per_token=self.k_per_token,
            nprobe=self.nprobe,
            n_rerank=self.n_rerank,
            exhaustive_max_tokens=self.exhaustive_max_tokens,
            device_exact=self.device_exact,
            device_precision=self.device_precision,
        )


BUILD_TIME_FIELDS = ("vector_dtype", "ivf_min_tokens", "ivf_nlist", "ivf_codec", "text_analyzer")
