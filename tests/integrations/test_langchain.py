from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from langchain_core.documents import Document
from pydantic import ValidationError

from latestore import Store
from latestore.errors import FilterError
from latestore.integrations import page_image
from latestore.integrations.langchain import (
    LatestoreRetriever,
    add_documents,
    delete_documents,
)
from tests.integrations.conftest import FIGURE_TEXT, png_bytes

QUERY = "how does late interaction score documents?"


def test_documents_follow_the_store_ranking(corpus_store: Store) -> None:
    hits = corpus_store.search(QUERY, k=4)
    docs = LatestoreRetriever(store=corpus_store, k=4).invoke(QUERY)

    assert [d.metadata["page_id"] for d in docs] == [h.page_id for h in hits]
    assert [d.metadata["score"] for d in docs] == [h.score for h in hits]
    top, hit = docs[0], hits[0]
    assert top.page_content == hit.text
    assert top.id == hit.external_id
    assert top.metadata == {
        **hit.metadata,
        "page_id": hit.page_id,
        "external_id": hit.external_id,
        "document_id": "retrieval",
        "page_number": hit.page_number,
        "source": "/corpus/retrieval.pdf",
        "score": hit.score,
        "rank": 1,
        "signals": ["maxsim"],
    }


def test_mode_in_the_constructor_and_per_call(corpus_store: Store) -> None:
    words = "risotto stock"  # words of one cooking page
    lexical = LatestoreRetriever(store=corpus_store, k=3, mode="lexical").invoke(words)
    assert [d.metadata["signals"] for d in lexical] == [["lexical"]]
    assert "risotto" in lexical[0].page_content
    hybrid = LatestoreRetriever(store=corpus_store, k=3).invoke(words, mode="hybrid")
    expected = corpus_store.search(words, k=3, mode="hybrid")
    assert [d.metadata["page_id"] for d in hybrid] == [h.page_id for h in expected]
    assert hybrid[0].metadata["signals"] == ["maxsim", "lexical"]
    with pytest.raises(ValidationError):
        LatestoreRetriever(store=corpus_store, mode="bm25")


def test_image_pages_carry_a_resolvable_reference(corpus_store: Store) -> None:
    docs = LatestoreRetriever(store=corpus_store, k=1).invoke("monthly rainfall chart")

    assert docs[0].page_content == FIGURE_TEXT
    uri = docs[0].metadata["image_uri"]
    assert uri == f"latestore://page/{docs[0].metadata['page_id']}/image"
    assert page_image(corpus_store, uri) == png_bytes()


def test_k_filter_and_threshold_per_call(corpus_store: Store) -> None:
    retriever = LatestoreRetriever(store=corpus_store, k=2, filter={"topic": "ir"})

    assert len(retriever.invoke(QUERY)) == 2
    assert len(retriever.invoke(QUERY, k=5)) == 3  # only three pages are about "ir"
    narrowed = retriever.invoke(QUERY, k=5, filter={"year": {"$gte": 2020}})
    # the per-call filter narrows the retriever's own; it cannot widen it
    assert {d.metadata["year"] for d in narrowed} == {2020, 2021}
    assert {d.metadata["topic"] for d in narrowed} == {"ir"}

    scores = [d.metadata["score"] for d in retriever.invoke(QUERY, k=3)]
    kept = retriever.invoke(QUERY, k=3, score_threshold=scores[1])
    assert [d.metadata["score"] for d in kept] == scores[:2]


def test_constructor_threshold_and_bad_arguments(corpus_store: Store) -> None:
    scores = [d.metadata["score"] for d in LatestoreRetriever(store=corpus_store).invoke(QUERY)]
    strict = LatestoreRetriever(store=corpus_store, score_threshold=scores[0])
    assert len(strict.invoke(QUERY)) == 1

    with pytest.raises(TypeError, match="top_k"):
        strict.invoke(QUERY, top_k=3)
    with pytest.raises(FilterError):
        strict.invoke(QUERY, filter={"no_such_key": 1})
    with pytest.raises(ValueError):
        LatestoreRetriever(store=corpus_store, k=0)


def test_batch_matches_invoke(corpus_store: Store) -> None:
    retriever = LatestoreRetriever(store=corpus_store, k=2)
    queries = [QUERY, "cooking rice", "why do volcanoes erupt?"]

    batched = retriever.batch(queries)

    assert [[d.id for d in docs] for docs in batched] == [
        [d.id for d in retriever.invoke(q)] for q in queries
    ]
    assert batched[1][0].metadata["topic"] == "food"
    assert batched[2][0].metadata["topic"] == "earth"


async def test_ainvoke_matches_invoke_and_leaves_the_loop_free(corpus_store: Store) -> None:
    retriever = LatestoreRetriever(store=corpus_store, k=3)
    task = asyncio.create_task(retriever.ainvoke(QUERY, k=2))
    spins = 0
    while not task.done():
        spins += 1
        await asyncio.sleep(0)
    docs = task.result()

    # a search that ran on the loop would finish within the first few spins
    assert spins > 10
    assert [d.id for d in docs] == [d.id for d in retriever.invoke(QUERY, k=2)]
    assert len(await retriever.ainvoke(QUERY, filter={"lang": "de"})) == 1


def test_add_and_delete_langchain_documents(empty_store: Store) -> None:
    docs = [
        Document(
            page_content="Photosynthesis turns light, water and carbon dioxide into sugar.",
            id="bio-1",
            metadata={"source": "biology.pdf", "page": 3, "fetched": dt.date(2024, 5, 1)},
        ),
        Document(
            page_content="Mitochondria release energy from sugar in cellular respiration.",
            metadata={"source": "biology.pdf", "page": 4, "path": Path("/x/biology.pdf")},
        ),
        Document(
            page_content="The offside rule applies in the attacking half only.",
            metadata={"source": "football.txt", "document_id": "rules"},
        ),
    ]

    ids = add_documents(empty_store, docs)

    assert ids[0] == "bio-1" and len(set(ids)) == 3
    retriever = LatestoreRetriever(store=empty_store, k=1)
    [found] = retriever.invoke("how do plants make sugar from light?")
    assert found.id == "bio-1"
    assert found.metadata["fetched"] == "2024-05-01"
    assert (found.metadata["source"], found.metadata["page"]) == ("biology.pdf", 3)
    assert (found.metadata["document_id"], found.metadata["page_number"]) == ("biology.pdf", 3)
    # lifted fields are real page columns, so filters reach them
    [rules] = retriever.invoke("sugar", filter={"document_id": "rules"})
    assert rules.id == ids[2]

    # re-adding an id replaces the page instead of duplicating it
    add_documents(
        empty_store, [Document(page_content="Chlorophyll absorbs red light.")], ids=["bio-1"]
    )
    assert empty_store.count() == 3
    assert empty_store.get_by_external_id("bio-1").text == "Chlorophyll absorbs red light."

    assert delete_documents(empty_store, ["bio-1", ids[1], "never-added"]) == 2
    assert [d.id for d in retriever.invoke("sugar", k=3)] == [ids[2]]
