"""Hostile input corpus: each case gets a typed error or a documented safe behaviour,
and the store is verified unchanged afterwards (apart from a safely stored page).

Every case runs on SQLite and, when LATESTORE_TEST_PG_URL is set (.ci/run sets it), on
PostgreSQL, whose text, JSON and error handling differ from SQLite's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from latestore import IndexConfig, Page, SearchConfig, StorageConfig, Store, StoreConfig
from latestore.errors import (
    DimensionMismatchError,
    DuplicateExternalIdError,
    EmptyPageError,
    EncoderError,
    FilterError,
    InvalidInputError,
    InvalidVectorError,
    NonFiniteVectorError,
    PageNotFoundError,
    UnknownFilterFieldError,
    UnknownFilterOperatorError,
)
from latestore.ingest.sources import SourceError, open_source
from latestore.store.images import UnreadableImageError
from latestore.store.schema import PageRow
from tests.helpers import precomputed_store
from tests.reliability import hostile_inputs
from tests.store.helpers import clustered_pages

DIM = 16
N_PAGES = 20
SQL_KEY = "x'); DROP TABLE ls_pages; --"
SQL_VALUE = "1' OR '1'='1'; DELETE FROM ls_pages; --"


@dataclass
class Ctx:
    store: Store
    tmp: Path

    def vec(self, n: int = 3, dim: int = DIM) -> np.ndarray:
        return np.random.default_rng(n).standard_normal((n, dim)).astype(np.float32)

    def add(self, **fields: Any) -> list[int]:
        fields.setdefault("vectors", self.vec())
        return self.store.add_pages([Page(**fields)])

    def query(self, **kwargs: Any) -> Any:
        return self.store.search(kwargs.pop("q", self.vec(4)), **kwargs)

    def old_query(self, **kwargs: Any) -> Any:
        """A search in a deprecated spelling (validated as the typed options are)."""
        with pytest.warns(DeprecationWarning, match="is deprecated"):
            return self.query(**kwargs)

    def source(self, name: str, data: bytes) -> Any:
        path = self.tmp / name
        path.write_bytes(data)
        return open_source(path, dpi=72, chunk_chars=2000)


Action = Callable[[Ctx], Any]
Check = Callable[[Ctx, Any], None]


def stored_verbatim(**expect: Any) -> Check:
    def check(ctx: Ctx, ids: Any) -> None:
        page = ctx.store.get_many(ids)[0]
        for key, value in expect.items():
            assert getattr(page, key) == value

    return check


def finds_only_new_page(ctx: Ctx, ids: Any) -> None:
    (page_id,) = ids
    key, value = next(iter(ctx.store.get(page_id).metadata.items()))
    hits = ctx.query(k=50, filter={f"metadata.{key}": value})
    assert [h.page_id for h in hits] == [page_id]


def empty_result(_: Ctx, hits: Any) -> None:
    assert hits == []


def all_pages(_: Ctx, hits: Any) -> None:
    assert len(hits) == N_PAGES


def five_hits(_: Ctx, hits: Any) -> None:
    assert len(hits) == 5 and all(h.signals == ("maxsim",) for h in hits)


def _lexical(words: str, mode: str, **kwargs: Any) -> Action:
    """A search whose words are ``words`` (the corpus pages have no text)."""
    return lambda c: c.query(k=5, mode=mode, lexical_text=words, **kwargs)


def deep(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        node = {"n": node}
    return node


def nested_filter(depth: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"lang": "en"}
    for _ in range(depth):
        spec = {"$and": [spec]}
    return spec


E = type[BaseException]
CASES: list[tuple[str, Action, E | None, Check | None]] = [
    # -- vectors ---------------------------------------------------------------
    ("nan-vector", lambda c: c.add(vectors=np.full((2, DIM), np.nan)), NonFiniteVectorError, None),
    ("inf-vector", lambda c: c.add(vectors=np.full((2, DIM), np.inf)), NonFiniteVectorError, None),
    (
        "neg-inf-one-value",
        lambda c: c.add(vectors=_poke(c.vec(), -np.inf)),
        NonFiniteVectorError,
        None,
    ),
    (
        "float64-overflows-float32",
        lambda c: c.add(vectors=np.full((2, DIM), 1e300)),
        NonFiniteVectorError,
        None,
    ),
    ("all-zero-vectors", lambda c: c.add(vectors=np.zeros((3, DIM))), InvalidVectorError, None),
    ("one-zero-token", lambda c: c.add(vectors=_zero_row(c.vec())), InvalidVectorError, None),
    ("dim-too-big", lambda c: c.add(vectors=c.vec(3, DIM + 1)), DimensionMismatchError, None),
    ("dim-too-small", lambda c: c.add(vectors=c.vec(3, DIM - 1)), DimensionMismatchError, None),
    ("dim-zero", lambda c: c.add(vectors=np.zeros((3, 0))), DimensionMismatchError, None),
    ("vectors-1d", lambda c: c.add(vectors=np.ones(DIM)), InvalidVectorError, None),
    ("vectors-3d", lambda c: c.add(vectors=np.ones((2, 2, DIM))), InvalidVectorError, None),
    ("zero-tokens", lambda c: c.add(vectors=np.zeros((0, DIM))), EmptyPageError, None),
    ("string-vectors", lambda c: c.add(vectors=np.array([["a"] * DIM])), InvalidVectorError, None),
    ("bool-vectors", lambda c: c.add(vectors=np.ones((2, DIM), bool)), InvalidVectorError, None),
    (
        "complex-vectors",
        lambda c: c.add(vectors=np.ones((2, DIM), complex)),
        InvalidVectorError,
        None,
    ),
    ("ragged-vectors", lambda c: c.add(vectors=[[1.0] * DIM, [1.0]]), InvalidInputError, None),
    (
        "huge-finite-values",
        lambda c: c.add(vectors=np.full((2, DIM), 3e38, np.float32)),
        None,
        stored_verbatim(n_tokens=2),
    ),
    # -- pages and batches -----------------------------------------------------
    ("page-without-content", lambda c: Page(), InvalidInputError, None),
    ("not-a-page", lambda c: c.store.add_pages([{"text": "hi"}]), InvalidInputError, None),  # type: ignore[list-item]
    (
        "duplicate-ids-in-batch",
        lambda c: c.store.add_pages(
            [Page(vectors=c.vec(), external_id="d"), Page(vectors=c.vec(4), external_id="d")]
        ),
        DuplicateExternalIdError,
        None,
    ),
    (
        "existing-id-no-upsert",
        lambda c: c.store.add_pages([Page(vectors=c.vec(), external_id="doc-1")], upsert=False),
        DuplicateExternalIdError,
        None,
    ),
    (
        "bad-page-last-in-batch",
        lambda c: c.store.add_pages(
            [Page(vectors=c.vec(), external_id="ok"), Page(vectors=np.full((2, DIM), np.nan))]
        ),
        NonFiniteVectorError,
        None,
    ),
    ("empty-external-id", lambda c: c.add(external_id=""), InvalidInputError, None),
    ("huge-external-id", lambda c: c.add(external_id="x" * 10_000), InvalidInputError, None),
    ("negative-page-number", lambda c: c.add(page_number=-1), InvalidInputError, None),
    (
        "text-without-vectors-no-model",
        lambda c: c.store.add_pages([Page(text="hello")]),
        EncoderError,
        None,
    ),
    # -- text ------------------------------------------------------------------
    ("non-utf8-bytes-as-text", lambda c: c.add(text=b"\xff\xfe\xfa"), InvalidInputError, None),
    ("lone-surrogate-text", lambda c: c.add(text="bad \udcff end"), InvalidInputError, None),
    ("lone-surrogate-metadata", lambda c: c.add(metadata={"k": "\ud800"}), InvalidInputError, None),
    ("nul-in-text", lambda c: c.add(text="a\x00b"), InvalidInputError, None),
    ("nul-in-document-id", lambda c: c.add(document_id="a\x00b"), InvalidInputError, None),
    (
        "non-utf8-text-file",
        lambda c: c.source("latin.txt", "café".encode("latin-1")),
        SourceError,
        None,
    ),
    (
        "rtl-and-emoji-text",
        lambda c: c.add(text="\u202eevil\u202c 🧨" * 100),
        None,
        stored_verbatim(text="\u202eevil\u202c 🧨" * 100),
    ),
    # -- metadata --------------------------------------------------------------
    ("sql-looking-key", lambda c: c.add(metadata={SQL_KEY: "v"}), None, finds_only_new_page),
    ("sql-looking-value", lambda c: c.add(metadata={"note": SQL_VALUE}), None, finds_only_new_page),
    ("json-path-key", lambda c: c.add(metadata={'a"].b[0': "v"}), InvalidInputError, None),
    ("control-char-key", lambda c: c.add(metadata={"a\nb": "v"}), InvalidInputError, None),
    ("bracket-dot-key", lambda c: c.add(metadata={"a].b[0": "v"}), None, finds_only_new_page),
    ("dollar-dot-key", lambda c: c.add(metadata={"$.lang": "zz"}), None, finds_only_new_page),
    (
        "oversized-metadata",
        lambda c: c.add(metadata={"blob": "x" * 70_000}),
        InvalidInputError,
        None,
    ),
    ("nan-metadata", lambda c: c.add(metadata={"v": float("nan")}), InvalidInputError, None),
    ("inf-metadata", lambda c: c.add(metadata={"v": float("inf")}), InvalidInputError, None),
    ("non-json-metadata", lambda c: c.add(metadata={"v": {1, 2}}), InvalidInputError, None),
    ("empty-metadata-key", lambda c: c.add(metadata={"": 1}), InvalidInputError, None),
    ("long-metadata-key", lambda c: c.add(metadata={"k" * 300: 1}), InvalidInputError, None),
    ("deeply-nested-metadata", lambda c: c.add(metadata=deep(50_000)), InvalidInputError, None),
    (
        "huge-int-metadata",
        lambda c: c.add(metadata={"n": 10**40}),
        None,
        stored_verbatim(metadata={"n": 10**40}),
    ),
    # -- filters ---------------------------------------------------------------
    (
        "filter-injection-value",
        lambda c: c.query(k=5, filter={"lang": "en' OR '1'='1"}),
        None,
        empty_result,
    ),
    (
        "filter-injection-field",
        lambda c: c.query(k=5, filter={"lang' OR 1=1 --": "en"}),
        UnknownFilterFieldError,
        None,
    ),
    (
        "filter-injection-metadata-path",
        lambda c: c.query(k=5, filter={"metadata.lang') OR 1=1 --": "x"}),
        UnknownFilterFieldError,
        None,
    ),
    (
        "filter-injection-operator",
        lambda c: c.query(k=5, filter={"lang": {"$where": "1=1"}}),
        UnknownFilterOperatorError,
        None,
    ),
    (
        "filter-injection-in-list",
        lambda c: c.query(k=5, filter={"lang": {"$in": ["x') OR 1=1 --"]}}),
        None,
        empty_result,
    ),
    (
        "filter-raw-sql-string",
        lambda c: c.query(k=5, filter="1=1; DROP TABLE ls_pages"),
        FilterError,
        None,
    ),  # type: ignore[arg-type]
    ("filter-too-deep", lambda c: c.query(k=5, filter=nested_filter(100)), FilterError, None),
    (
        "filter-huge-in",
        lambda c: c.query(k=5, filter={"lang": {"$in": list(range(20_000))}}),
        FilterError,
        None,
    ),
    (
        "filter-too-many-clauses",
        lambda c: c.query(k=5, filter={"$or": [{"i": i} for i in range(2_000)]}),
        FilterError,
        None,
    ),
    (
        "filter-nan-value",
        lambda c: c.query(k=5, filter={"year": {"$gt": float("nan")}}),
        FilterError,
        None,
    ),
    ("filter-non-string-key", lambda c: c.query(k=5, filter={1: "en"}), FilterError, None),
    # Values a field cannot hold: SQLite compared them loosely, PostgreSQL failed with
    # a raw DataError or ProgrammingError; numbers past 64 bits overflowed the driver.
    ("filter-int-past-64-bits", lambda c: c.query(k=5, filter={"year": 2**64}), None, empty_result),
    (
        "filter-range-past-64-bits",
        lambda c: c.query(k=50, filter={"year": {"$lt": 2**70}}),
        None,
        all_pages,
    ),
    ("filter-int-past-float", lambda c: c.query(k=5, filter={"year": 10**400}), FilterError, None),
    (
        "filter-page-id-past-32-bits",
        lambda c: c.query(k=5, filter={"page_id": {"$in": [10**12, 2**64]}}),
        None,
        empty_result,
    ),
    ("filter-string-page-id", lambda c: c.query(k=5, filter={"page_id": "1"}), FilterError, None),
    (
        "filter-word-page-number",
        lambda c: c.query(k=5, filter={"page_number": "one"}),
        FilterError,
        None,
    ),
    (
        "filter-number-document",
        lambda c: c.query(k=5, filter={"document_id": 5}),
        FilterError,
        None,
    ),
    ("filter-bool-on-numbers", lambda c: c.query(k=5, filter={"year": True}), None, empty_result),
    (
        "filter-mixed-kinds-key",
        lambda c: (c.add(metadata={"year": "MMV"}), c.query(k=50, filter={"year": 2005}))[1],
        None,
        lambda c, hits: _all_have(c, hits, "year", 2005),
    ),
    # -- ids -------------------------------------------------------------------
    ("get-id-past-32-bits", lambda c: c.store.get(10**12), PageNotFoundError, None),
    ("get-id-past-64-bits", lambda c: c.store.get(2**64), PageNotFoundError, None),
    ("get-none", lambda c: c.store.get(None), InvalidInputError, None),  # type: ignore[arg-type]
    ("image-id-past-32-bits", lambda c: c.store.image(10**12), PageNotFoundError, None),
    ("get-external-id-int", lambda c: c.store.get_by_external_id(5), InvalidInputError, None),  # type: ignore[arg-type]
    ("delete-none", lambda c: c.store.delete(None), InvalidInputError, None),  # type: ignore[arg-type]
    ("delete-string-ids", lambda c: c.store.delete("12"), InvalidInputError, None),  # type: ignore[arg-type]
    ("delete-float-id", lambda c: c.store.delete([1.5]), InvalidInputError, None),  # type: ignore[list-item]
    (
        "delete-external-id-str",
        lambda c: c.store.delete(external_ids="doc-1"),
        InvalidInputError,
        None,
    ),
    (
        "delete-ids-past-32-bits",
        lambda c: c.store.delete([10**12, 2**64, -1, 0]),
        None,
        lambda c, removed: _equals(removed, 0),
    ),
    # -- NUL and lone surrogates on reads: PostgreSQL raised a raw DataError for NUL,
    # both backends a UnicodeEncodeError for a surrogate (issue 26 items 3 and 4) ------
    ("filter-nul-value", lambda c: c.query(k=5, filter={"lang": "e\x00n"}), None, empty_result),
    (
        "filter-nul-document-id",
        lambda c: c.query(k=5, filter={"document_id": "book-1\x00"}),
        None,
        empty_result,
    ),
    (
        "filter-nul-in-list",
        lambda c: c.query(k=5, filter={"external_id": {"$in": ["doc-1\x00", "x\x00"]}}),
        None,
        empty_result,
    ),
    (
        "filter-nul-ne",
        lambda c: c.query(k=50, filter={"lang": {"$ne": "e\x00n"}}),
        None,
        all_pages,
    ),
    (
        "filter-nul-nin",
        lambda c: c.query(k=50, filter={"document_id": {"$nin": ["\x00"]}}),
        None,
        all_pages,
    ),
    (
        "filter-nul-range",
        lambda c: c.query(k=5, filter={"lang": {"$gt": "e\x00"}}),
        FilterError,
        None,
    ),
    (
        "page-ids-nul-filter",
        lambda c: c.store.page_ids({"lang": "e\x00n"}),
        None,
        lambda c, ids: _equals(ids, []),
    ),
    (
        "delete-where-nul",
        lambda c: c.store.delete_where({"document_id": "book-1\x00"}),
        None,
        lambda c, removed: _equals(removed, 0),
    ),
    (
        "get-external-id-nul",
        lambda c: c.store.get_by_external_id("doc-1\x00"),
        PageNotFoundError,
        None,
    ),
    (
        "delete-external-id-nul",
        lambda c: c.store.delete(external_ids=["doc-1\x00"]),
        None,
        lambda c, removed: _equals(removed, 0),
    ),
    (
        "pages-document-nul",
        lambda c: c.store.pages(document_id="book-1\x00"),
        None,
        lambda c, pages: _equals(pages, []),
    ),
    (
        "pages-filter-nul",
        lambda c: c.store.pages(filter={"lang": "\x00"}),
        None,
        lambda c, pages: _equals(pages, []),
    ),
    ("nul-in-metadata-value", lambda c: c.add(metadata={"k": "a\x00b"}), InvalidInputError, None),
    (
        "nul-in-nested-metadata",
        lambda c: c.add(metadata={"k": [{"deep": "\x00"}]}),
        InvalidInputError,
        None,
    ),
    (
        "nul-in-nested-metadata-key",
        lambda c: c.add(metadata={"k": {"a\x00": 1}}),
        InvalidInputError,
        None,
    ),
    (
        "get-external-id-surrogate",
        lambda c: c.store.get_by_external_id("doc-\ud800"),
        InvalidInputError,
        None,
    ),
    (
        "delete-external-id-surrogate",
        lambda c: c.store.delete(external_ids=["doc-\udcff"]),
        InvalidInputError,
        None,
    ),
    (
        "pages-document-surrogate",
        lambda c: c.store.pages(document_id="\ud800"),
        InvalidInputError,
        None,
    ),
    (
        "filter-surrogate-value",
        lambda c: c.query(k=5, filter={"lang": "\udcff"}),
        FilterError,
        None,
    ),
    (
        "pages-limit-past-64-bits",
        lambda c: c.store.pages(limit=2**70),
        None,
        lambda c, pages: _equals(len(pages), N_PAGES),
    ),
    (
        "pages-offset-past-64-bits",
        lambda c: c.store.pages(offset=2**70),
        None,
        lambda c, pages: _equals(pages, []),
    ),
    # -- k ---------------------------------------------------------------------
    ("k-zero", lambda c: c.query(k=0), InvalidInputError, None),
    ("k-negative", lambda c: c.query(k=-5), InvalidInputError, None),
    ("k-huge", lambda c: c.query(k=10**12), InvalidInputError, None),
    ("k-bool", lambda c: c.query(k=True), InvalidInputError, None),
    ("k-float", lambda c: c.query(k=2.5), InvalidInputError, None),
    ("k-string", lambda c: c.query(k="10"), InvalidInputError, None),
    ("k-larger-than-store", lambda c: c.query(k=5_000), None, all_pages),
    # -- queries ---------------------------------------------------------------
    ("query-nan", lambda c: c.query(q=np.full((2, DIM), np.nan), k=5), NonFiniteVectorError, None),
    ("query-wrong-dim", lambda c: c.query(q=c.vec(2, DIM * 2), k=5), DimensionMismatchError, None),
    ("query-zero-tokens", lambda c: c.query(q=np.zeros((0, DIM)), k=5), EmptyPageError, None),
    ("query-blank-text", lambda c: c.query(q="   ", k=5), InvalidInputError, None),
    ("query-lone-surrogate", lambda c: c.query(q="bad \udcff", k=5), InvalidInputError, None),
    ("query-none", lambda c: c.query(q=None, k=5), InvalidInputError, None),
    ("query-int", lambda c: c.query(q=5, k=5), InvalidInputError, None),
    (
        "query-1d-vector",
        lambda c: c.query(q=np.ones(DIM, np.float32), k=5),
        InvalidVectorError,
        None,
    ),
    ("query-search-setting-typo", lambda c: c.query(k=5, nprobes=4), InvalidInputError, None),
    ("query-negative-nprobe", lambda c: c.old_query(k=5, nprobe=-1), InvalidInputError, None),
    # -- lexical and hybrid query text: never read as FTS5 or tsquery syntax ------
    *[
        (f"lexical-syntax-{i}", _lexical(words, "lexical"), None, empty_result)
        for i, words in enumerate(hostile_inputs.LEXICAL_QUERIES)
    ],
    *[
        (f"hybrid-syntax-{i}", _lexical(words, "hybrid"), None, five_hits)
        for i, words in enumerate(hostile_inputs.LEXICAL_QUERIES)
    ],
    ("exact-phrase-syntax", _lexical("pump", "hybrid", phrase='"a" OR b*'), None, empty_result),
    ("mode-unknown", lambda c: c.query(k=5, mode="bm25"), InvalidInputError, None),
    ("mode-lexical-vectors-only", lambda c: c.query(k=5, mode="lexical"), InvalidInputError, None),
    ("exact-blank", lambda c: c.query(k=5, phrase=" "), InvalidInputError, None),
    (
        "lexical-weight-past-one",
        lambda c: c.old_query(k=5, lexical_weight=1.5),
        InvalidInputError,
        None,
    ),
    ("lexical-text-not-text", _lexical(5, "hybrid"), InvalidInputError, None),  # type: ignore[arg-type]
    # -- images and PDFs -------------------------------------------------------
    (
        "decompression-bomb-png",
        lambda c: c.store.add_pages([Page(image=hostile_inputs.png_bomb())]),
        UnreadableImageError,
        None,
    ),
    (
        "truncated-png",
        lambda c: c.store.add_pages([Page(image=hostile_inputs.small_png()[:60])]),
        UnreadableImageError,
        None,
    ),
    (
        "not-an-image",
        lambda c: c.store.add_pages([Page(image=b"<html>hi</html>")]),
        UnreadableImageError,
        None,
    ),
    (
        "garbage-image-with-vectors",
        lambda c: c.add(image=b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
        UnreadableImageError,
        None,
    ),
    (
        "truncated-png-with-vectors",
        lambda c: c.add(image=hostile_inputs.small_png()[:-20]),
        UnreadableImageError,
        None,
    ),
    (
        "png-with-vectors",
        lambda c: c.add(image=hostile_inputs.small_png()),
        None,
        stored_verbatim(has_image=True),
    ),
    (
        "missing-image-path",
        lambda c: c.store.add_pages([Page(image_path=c.tmp / "nope.png")]),
        UnreadableImageError,
        None,
    ),
    (
        "truncated-pdf",
        lambda c: c.source("t.pdf", hostile_inputs.pdf_bytes()[:200]),
        SourceError,
        None,
    ),
    (
        "encrypted-pdf",
        lambda c: c.source("e.pdf", hostile_inputs.encrypted_pdf()),
        SourceError,
        None,
    ),
    ("html-named-pdf", lambda c: c.source("h.pdf", b"<html></html>"), SourceError, None),
    ("empty-pdf", lambda c: c.source("z.pdf", b""), SourceError, None),
]


def _all_have(ctx: Ctx, hits: Any, key: str, value: Any) -> None:
    assert hits and all(h.metadata[key] == value for h in hits)


def _equals(result: Any, expected: Any) -> None:
    assert result == expected


def _poke(array: np.ndarray, value: float) -> np.ndarray:
    array[1, 3] = value
    return array


def _zero_row(array: np.ndarray) -> np.ndarray:
    array[-1] = 0
    return array


def state(store: Store) -> tuple[Any, ...]:
    with Session(store._engine) as session:
        rows = session.execute(
            select(PageRow.id, PageRow.external_id, PageRow.content_hash, PageRow.meta)
            .where(PageRow.id <= N_PAGES)
            .order_by(PageRow.id)
        ).all()
    tables = sorted(inspect(store._engine).get_table_names())
    return tuple(rows), tuple(tables)


@pytest.fixture
def ctx(store_url: str, tmp_path: Path) -> Iterator[Ctx]:
    config = StoreConfig(
        storage=StorageConfig(vector_dtype="float32"),
        search=SearchConfig(exhaustive_max_tokens=0),
        index=IndexConfig(ivf_codec="none"),
    )
    pages, _ = clustered_pages(np.random.default_rng(2), N_PAGES, dim=DIM)
    with precomputed_store(store_url, DIM, config=config) as store:
        store.add_pages(pages)
        yield Ctx(store, tmp_path)


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({name for name, *_ in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "action", "error", "check"), CASES, ids=[c[0] for c in CASES])
def test_hostile_input(
    ctx: Ctx, name: str, action: Action, error: E | None, check: Check | None
) -> None:
    store = ctx.store
    before, change_before = state(store), store.stats().change_no
    count_before = store.count()
    if error is not None:
        with pytest.raises(error):
            action(ctx)
        assert store.count() == count_before
        assert store.stats().change_no == change_before
    else:
        result = action(ctx)
        if check is not None:
            check(ctx, result)
    assert state(store) == before
    index = store._sync.index
    assert index.consistent() and len(index.vectors) == store.count()
    assert len(store.search(ctx.vec(4), k=N_PAGES)) == min(N_PAGES, store.count())
