"""One small store shared by the adapter tests: encoding with MiniLM is the slow part."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from PIL import Image

from latestore import Encoder, Page, Store

# (text, document_id, page_number, metadata); topics far apart so rankings are stable.
CORPUS: list[tuple[str, str, int, dict[str, Any]]] = [
    (
        "ColBERT scores a page by summing, over query tokens, the best matching page token.",
        "retrieval",
        1,
        {"topic": "ir", "year": 2020, "lang": "en"},
    ),
    (
        "Late interaction keeps one vector per token and compares them with MaxSim at query time.",
        "retrieval",
        2,
        {"topic": "ir", "year": 2021, "lang": "en"},
    ),
    (
        "FAISS finds approximate nearest neighbours of vectors with inverted lists and PQ codes.",
        "retrieval",
        3,
        {"topic": "ir", "year": 2017, "lang": "en"},
    ),
    (
        "SQLite stores a whole relational database in a single file with atomic transactions.",
        "databases",
        1,
        {"topic": "db", "year": 2004, "lang": "en"},
    ),
    (
        "PostgreSQL uses multiversion concurrency control so readers never block writers.",
        "databases",
        2,
        {"topic": "db", "year": 1996, "lang": "en"},
    ),
    (
        "Boil the pasta in salted water and drain it one minute before it is fully soft.",
        "cooking",
        1,
        {"topic": "food", "year": 2019, "lang": "en"},
    ),
    (
        "A risotto needs warm stock added slowly while the rice is stirred.",
        "cooking",
        2,
        {"topic": "food", "year": 2022, "lang": "en"},
    ),
    (
        "Volcanoes erupt when magma from the mantle rises through cracks in the crust.",
        "geology",
        1,
        {"topic": "earth", "year": 2015, "lang": "en"},
    ),
    (
        "Earthquakes happen when tectonic plates slip suddenly along a fault line.",
        "geology",
        2,
        {"topic": "earth", "year": 2018, "lang": "en"},
    ),
    (
        "Der Rhein fließt von den Alpen bis zur Nordsee durch mehrere Länder.",
        "geology",
        3,
        {"topic": "earth", "year": 2023, "lang": "de"},
    ),
]
FIGURE_TEXT = "Bar chart of monthly rainfall in millimetres for a coastal city."


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (30, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def corpus_pages() -> list[Page]:
    pages = [
        Page(
            text=text,
            document_id=doc,
            page_number=number,
            external_id=f"{doc}-{number}",
            source=f"/corpus/{doc}.pdf",
            metadata=metadata,
        )
        for text, doc, number, metadata in CORPUS
    ]
    # MiniLM encodes only the text; the image is stored beside it, as for a scanned figure.
    pages.append(
        Page(
            text=FIGURE_TEXT,
            image=png_bytes(),
            document_id="figures",
            page_number=1,
            external_id="figure-1",
            metadata={"topic": "weather", "year": 2024, "lang": "en"},
        )
    )
    return pages


@pytest.fixture(scope="session")
def corpus_store(tmp_path_factory: pytest.TempPathFactory, minilm: object) -> Iterator[Store]:
    path: Path = tmp_path_factory.mktemp("integrations") / "corpus.db"
    store = Store.open(path, encoder=cast(Encoder, minilm))
    store.add_pages(corpus_pages())
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def empty_store(tmp_path: Path, minilm: object) -> Iterator[Store]:
    store = Store.open(tmp_path / "docs.db", encoder=cast(Encoder, minilm))
    try:
        yield store
    finally:
        store.close()
