"""Request and response bodies of the HTTP API (they make the OpenAPI schema at /docs)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from latestore.errors import InvalidInputError, InvalidVectorError
from latestore.models import Page, PageRecord, SearchHit, StoredPage

# A query is text, or token vectors: a list of rows of floats (n_tokens x dim).
QueryIn = str | list[list[float]]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchRequest(Strict):
    query: QueryIn | None = Field(default=None, description="one query: text or vectors")
    queries: list[QueryIn] | None = Field(default=None, description="a batch of queries")
    k: int = 10
    filter: dict[str, Any] | None = None
    exhaustive: bool = False
    explain: bool = Field(default=False, description="attach 'why this page' to every hit")

    @model_validator(mode="after")
    def _one_form(self) -> SearchRequest:
        if (self.query is None) == (self.queries is None):
            raise ValueError("give exactly one of 'query' and 'queries'")
        if self.queries is not None and not self.queries:
            raise ValueError("'queries' is empty")
        return self


class ExplainRequest(Strict):
    query: QueryIn
    page_id: int


class TokenMatchOut(BaseModel):
    query_token: int
    label: str | None
    page_token: int
    similarity: float
    share: float
    span: tuple[int, int] | None = Field(description="characters of the page text, [start, end)")
    cell: tuple[int, int] | None = Field(description="(row, column) on the page's patch grid")


class HighlightOut(BaseModel):
    start: int
    end: int
    weight: float


class HeatmapOut(BaseModel):
    rows: int
    cols: int
    values: list[list[float | None]]


class ExplanationOut(BaseModel):
    page_id: int
    score: float
    page_tokens: int
    positions: str = Field(description="'text', 'image', or 'unknown'")
    positions_note: str | None
    matches: list[TokenMatchOut]
    highlights: list[HighlightOut]
    heatmap: HeatmapOut | None


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
    score: float
    rank: int
    explanation: ExplanationOut | None = None

    @classmethod
    def of(cls, hit: SearchHit, explanation: ExplanationOut | None = None) -> HitOut:
        return cls(**cls.fields_of(hit), score=hit.score, rank=hit.rank, explanation=explanation)


class PageOut(PageFieldsOut):
    content_hash: str
    n_tokens: int

    @classmethod
    def of(cls, page: StoredPage) -> PageOut:
        return cls(**cls.fields_of(page), content_hash=page.content_hash, n_tokens=page.n_tokens)


class SearchResponse(BaseModel):
    hits: list[HitOut] | None = None
    results: list[list[HitOut]] | None = None


class PageIn(Strict):
    """A page to add. No ``image_path``: a request never names a file on the server."""

    text: str | None = None
    image_base64: str | None = Field(default=None, description="PNG/JPEG/... bytes, base64")
    vectors: list[list[float]] | None = None
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
        vectors = as_vectors(self.vectors, "page vectors") if self.vectors is not None else None
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


def as_vectors(rows: list[list[float]], what: str) -> npt.NDArray[np.float32]:
    """JSON rows as a 2-D float32 array; ragged rows are an input error, not a 500."""
    try:
        array = np.asarray(rows, dtype=np.float32)
    except ValueError as exc:
        raise InvalidVectorError(f"{what} must be rows of equal length: {exc}") from exc
    if array.ndim != 2:
        raise InvalidVectorError(f"{what} must be 2-D (tokens, dim), got shape {array.shape}")
    return array
