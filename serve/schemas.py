"""Request and response bodies of the HTTP API (they make the OpenAPI schema at /docs)."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from latestore.errors import InvalidInputError, InvalidVectorError
from latestore.models import Page, PageRecord, SearchHit, StoredPage

# A query is text, or token vectors: a list of rows of floats (n_tokens x dim).
QueryIn = str | list[list[float]]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


SEARCH_MODES = ["maxsim", "lexical", "hybrid"]
MAX_K = 10_000  # store/searcher.py's limit, documented here; the store enforces it


class SearchRequest(Strict):
    """A search in any of the store's modes, with ``Store.search``'s arguments.

    Values are checked by the store itself, so a bad ``k``, ``mode``, ``phrase`` or
    filter is the same typed error (400) as in Python; a wrong JSON type is 422.
    """

    query: QueryIn | None = Field(default=None, description="one query: text or vectors")
    queries: list[QueryIn] | None = Field(default=None, description="a batch of queries")
    k: int = Field(
        default=10,
        description="hits per result page",
        json_schema_extra={"minimum": 1, "maximum": MAX_K},
    )
    mode: str | None = Field(
        default=None,
        description="'maxsim' (token vectors), 'lexical' (the full-text index) or "
        "'hybrid' (both, fused); default: the store's StoreConfig.search.mode",
        json_schema_extra={"enum": [*SEARCH_MODES, None]},
    )
    phrase: str | None = Field(
        default=None,
        description="a phrase every hit must contain, word for word (Store.search's exact)",
        json_schema_extra={"maxLength": 2000},
    )
    lexical_text: str | list[str | None] | None = Field(
        default=None,
        description="the words of a query given as vectors (one per query for a batch), "
        "for the lexical and hybrid modes",
    )
    filter: dict[str, Any] | None = Field(
        default=None, description='metadata filter, e.g. {"year": {"$gte": 2020}}'
    )
    exhaustive: bool = Field(
        default=False, description="score every allowed page exactly (slower, the truth)"
    )
    explain: bool = Field(default=False, description="attach 'why this page' to every hit")
    offset: int = Field(
        default=0,
        ge=0,
        description="hits to skip: the page of results starts at rank offset + 1",
    )
    cursor: str | None = Field(
        default=None,
        description="next_cursor of the previous response: the next page of the same search "
        "(instead of offset)",
    )

    @model_validator(mode="after")
    def _one_form(self) -> SearchRequest:
        if (self.query is None) == (self.queries is None):
            raise ValueError("give exactly one of 'query' and 'queries'")
        if self.queries is not None and not self.queries:
            raise ValueError("'queries' is empty")
        if self.cursor is not None and self.offset:
            raise ValueError("give 'offset' or 'cursor', not both")
        return self

    def lexical_texts(self) -> list[str | None] | None:
        """``lexical_text`` as Store.search_many takes it: one entry per query."""
        if self.lexical_text is None or isinstance(self.lexical_text, list):
            return self.lexical_text
        return [self.lexical_text]


class ExplainRequest(Strict):
    query: QueryIn
    page_id: int
    word: int | None = Field(
        default=None,
        description="index into the explanation's words: the heatmap shows that query word "
        "alone (image pages)",
    )


class TokenMatchOut(BaseModel):
    query_token: int
    label: str | None
    page_token: int
    similarity: float
    share: float
    span: tuple[int, int] | None = Field(description="characters of the page text, [start, end)")
    cell: tuple[int, int] | None = Field(description="(row, column) on the page's patch grid")
    word: int | None = Field(default=None, description="index of its query word in 'words'")
    page_word: str | None = Field(default=None, description="the page's whole word it matched")
    where: str = Field(default="", description="where on the page, in words")


class WordOut(BaseModel):
    text: str = Field(description="the word as typed; special tokens named in words")
    kind: str = Field(description="'word' (typed), 'prompt', 'special' or 'expansion'")
    tokens: list[int] = Field(description="its query tokens (indices into 'matches')")
    similarity: float = Field(description="its part of the score: its tokens' sum")
    share: float = Field(description="its share of the score")
    page_words: list[str] = Field(description="the page words it matched, best first")


class HighlightOut(BaseModel):
    start: int
    end: int
    weight: float


class HeatmapOut(BaseModel):
    rows: int
    cols: int
    values: list[list[float | None]] = Field(description="per patch; null: no token there")
    low: float | None = Field(default=None, description="the scale's lowest value")
    high: float | None = Field(default=None, description="the scale's highest value")
    word: int | None = Field(default=None, description="the query word shown, or all")
    what: str = Field(default="", description="what the values are, in words")


class ExplanationOut(BaseModel):
    page_id: int
    score: float
    page_tokens: int
    positions: str = Field(description="'text', 'image', or 'unknown'")
    positions_note: str | None
    matches: list[TokenMatchOut]
    highlights: list[HighlightOut]
    heatmap: HeatmapOut | None
    words: list[WordOut] | None = Field(
        default=None, description="the query's words with their part of the score"
    )


class PageFieldsOut(BaseModel):
    page_id: int
    external_id: str | None
    document_id: str | None
    page_number: int | None
    text: str | None
    source: str | None
    has_image: bool
    image_url: str | None
    metadata: dict[str, Any]

    @staticmethod
    def fields_of(page: PageRecord) -> dict[str, Any]:
        # image_path is left out on purpose: a client reaches images by page id only.
        return {
            "page_id": page.page_id,
            "external_id": page.external_id,
            "document_id": page.document_id,
            "page_number": page.page_number,
            "text": page.text,
            "source": page.source,
            "has_image": page.has_image,
            "image_url": f"/pages/{page.page_id}/image" if page.has_image else None,
            "metadata": page.metadata,
        }


class HitOut(PageFieldsOut):
    score: float = Field(description="the mode's score: MaxSim, lexical, or fused (hybrid)")
    rank: int = Field(description="1-based, over the whole ranking (offset included)")
    signals: list[str] = Field(default_factory=list, description="the rankings it came from")
    maxsim_score: float | None = None
    lexical_score: float | None = None
    lexical_rank: int | None = None
    explanation: ExplanationOut | None = None

    @classmethod
    def of(cls, hit: SearchHit, explanation: ExplanationOut | None = None) -> HitOut:
        return cls(
            **cls.fields_of(hit),
            score=hit.score,
            rank=hit.rank,
            signals=list(hit.signals),
            maxsim_score=hit.maxsim_score,
            lexical_score=hit.lexical_score,
            lexical_rank=hit.lexical_rank,
            explanation=explanation,
        )


class PageOut(PageFieldsOut):
    content_hash: str
    n_tokens: int

    @classmethod
    def of(cls, page: StoredPage) -> PageOut:
        return cls(**cls.fields_of(page), content_hash=page.content_hash, n_tokens=page.n_tokens)


class SearchResponse(BaseModel):
    hits: list[HitOut] | None = Field(default=None, description="for 'query'")
    results: list[list[HitOut]] | None = Field(default=None, description="for 'queries'")
    mode: str = Field(description="the mode that ranked")
    offset: int = Field(description="hits skipped before this page")
    k: int
    next_offset: int | None = Field(
        description="the next page's offset; null when this page was the last"
    )
    next_cursor: str | None = Field(description="the next page's cursor; null at the end")


class ModeOut(BaseModel):
    available: bool
    note: str | None = Field(default=None, description="why not, or what it needs")


class SummaryOut(BaseModel):
    """What the start page shows before any search."""

    pages: int
    documents: int
    pages_with_image: int
    encoder: str
    reads: str = Field(description="'images', 'text' or 'vectors': what a page's tokens are")
    default_mode: str
    modes: dict[str, ModeOut]
    examples: list[str] = Field(description="example queries drawn from the stored pages")
    version: str


class EncodedVectors(Strict):
    """Token vectors as bytes: ``shape`` rows of little-endian ``dtype`` numbers, base64.

    About 5.3 bytes a float32 number instead of about 9 as JSON text, decoded straight
    into an array (a nested list costs a Python float per number while it is parsed).
    """

    dtype: Literal["float32", "float16"] = Field(
        default="float32", description="little-endian float32 or float16"
    )
    shape: tuple[int, int] = Field(description="(tokens, dim)")
    data: str = Field(description="the rows' bytes, row after row, base64")

    def to_array(self) -> npt.NDArray[np.float32]:
        tokens, dim = self.shape
        if tokens < 1 or dim < 1:
            raise InvalidVectorError(f"vectors shape must be positive, got {list(self.shape)}")
        try:
            raw = base64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInputError(f"vectors data is not base64: {exc}") from exc
        kind = np.dtype("<f4" if self.dtype == "float32" else "<f2")
        if len(raw) != tokens * dim * kind.itemsize:
            raise InvalidVectorError(
                f"vectors data holds {len(raw)} bytes; shape {list(self.shape)} of "
                f"{self.dtype} needs {tokens * dim * kind.itemsize}"
            )
        # float32 in memory whatever was sent: the same page sent either way has the
        # same vectors, and so the same content hash.
        return np.frombuffer(raw, dtype=kind).reshape(tokens, dim).astype(np.float32)


class PageIn(Strict):
    """A page to add. No ``image_path``: a request never names a file on the server."""

    text: str | None = None
    image_base64: str | None = Field(default=None, description="PNG/JPEG/... bytes, base64")
    vectors: list[list[float]] | EncodedVectors | None = Field(
        default=None,
        description="token vectors: rows of numbers (tokens x dim), or the rows as "
        "base64 bytes (smaller, and cheaper for the server to read)",
    )
    external_id: str | None = None
    document_id: str | None = None
    page_number: int | None = None
    source: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    def to_page(self) -> Page:
        image = None
        if self.image_base64 is not None:
            try:
                image = base64.b64decode(self.image_base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise InvalidInputError(f"image_base64 is not base64: {exc}") from exc
        vectors: npt.NDArray[np.float32] | None
        if isinstance(self.vectors, EncodedVectors):
            vectors = self.vectors.to_array()
        elif self.vectors is not None:
            vectors = as_vectors(self.vectors, "page vectors")
        else:
            vectors = None
        return Page(
            text=self.text,
            image=image,
            vectors=vectors,
            external_id=self.external_id,
            document_id=self.document_id,
            page_number=self.page_number,
            source=self.source,
            metadata=self.metadata,
        )

    @field_validator("vectors", mode="wrap")
    @classmethod
    def _parsed_rows(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # POST /pages parses rows straight into a float32 array (serve/vector_json.py):
        # the array is taken as it is, not turned back into lists of floats.
        if isinstance(value, np.ndarray):
            return value
        return handler(value)


class AddRequest(Strict):
    pages: list[PageIn] = Field(min_length=1)


class AddResponse(BaseModel):
    ids: list[int]


class DeleteRequest(Strict):
    ids: list[int] = Field(default_factory=list)
    external_ids: list[str] = Field(default_factory=list)
    filter: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _something(self) -> DeleteRequest:
        if not self.ids and not self.external_ids and self.filter is None:
            raise ValueError("name pages to delete: 'ids', 'external_ids' or 'filter'")
        return self


class DeleteResponse(BaseModel):
    deleted: int


def as_vectors(rows: list[list[float]] | npt.NDArray[Any], what: str) -> npt.NDArray[np.float32]:
    """JSON rows (or the array read from them) as a 2-D float32 array; ragged rows are
    an input error, not a 500."""
    try:
        array = np.asarray(rows, dtype=np.float32)
    except ValueError as exc:
        raise InvalidVectorError(f"{what} must be rows of equal length: {exc}") from exc
    if array.ndim != 2:
        raise InvalidVectorError(f"{what} must be 2-D (tokens, dim), got shape {array.shape}")
    return array
