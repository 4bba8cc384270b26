from __future__ import annotations

import base64

import pytest
from llama_index.core.schema import ImageNode, NodeWithScore, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from latestore import Store
from latestore.errors import FilterError
from latestore.integrations.llamaindex import LatestoreRetriever, metadata_filters_to_filter
from tests.integrations.conftest import FIGURE_TEXT, png_bytes

QUERY = "how does late interaction score documents?"


def _f(key: str, value: object, op: FilterOperator = FilterOperator.EQ) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=op)  # type: ignore[arg-type]


def assert_matches_store(nodes: list[NodeWithScore], store: Store, k: int) -> None:
    hits = store.search(QUERY, k=k)
    assert [n.node.metadata["page_id"] for n in nodes] == [h.page_id for h in hits]
    assert [n.score for n in nodes] == [h.score for h in hits]
    for node, hit in zip(nodes, hits, strict=True):
        assert isinstance(node.node, TextNode)
        assert node.node.text == hit.text
        assert node.node.node_id == hit.external_id
        assert node.node.ref_doc_id == hit.document_id
        assert node.node.metadata == {
            **hit.metadata,
            "page_id": hit.page_id,
            "external_id": hit.external_id,
            "document_id": hit.document_id,
            "page_number": hit.page_number,
            "source": hit.source,
            "score": hit.score,
            "rank": hit.rank,
            "signals": ["maxsim"],
        }


def test_retrieve_returns_scored_nodes_in_store_order(corpus_store: Store) -> None:
    nodes = LatestoreRetriever(corpus_store, similarity_top_k=4).retrieve(QUERY)

    assert len(nodes) == 4
    assert_matches_store(nodes, corpus_store, k=4)
    # bookkeeping stays out of what the LLM reads; the page's own metadata does not
    llm_text = nodes[0].node.get_content(metadata_mode="llm")  # type: ignore[arg-type]
    assert "page_id" not in llm_text and "topic: ir" in llm_text


async def test_aretrieve_matches_retrieve(corpus_store: Store) -> None:
    retriever = LatestoreRetriever(corpus_store, similarity_top_k=3)

    nodes = await retriever.aretrieve(QUERY)

    assert_matches_store(nodes, corpus_store, k=3)


def test_image_pages_become_image_nodes(corpus_store: Store) -> None:
    plain = LatestoreRetriever(corpus_store, similarity_top_k=1)
    [hit] = plain.retrieve("monthly rainfall chart")
    assert isinstance(hit.node, ImageNode)
    assert hit.node.text == FIGURE_TEXT and hit.node.image is None
    assert hit.node.metadata["image_uri"].startswith("latestore://page/")

    with_images = LatestoreRetriever(corpus_store, similarity_top_k=1, include_images=True)
    [hit] = with_images.retrieve("monthly rainfall chart")
    assert isinstance(hit.node, ImageNode)
    assert base64.b64decode(hit.node.image or "") == png_bytes()


def test_mode_reaches_the_store(corpus_store: Store) -> None:
    words = "risotto stock"
    nodes = LatestoreRetriever(corpus_store, similarity_top_k=3, mode="hybrid").retrieve(words)
    expected = corpus_store.search(words, k=3, mode="hybrid")
    assert [n.node.metadata["page_id"] for n in nodes] == [h.page_id for h in expected]
    assert [n.score for n in nodes] == [h.score for h in expected]
    assert nodes[0].node.metadata["signals"] == ["maxsim", "lexical"]
    lexical = LatestoreRetriever(corpus_store, mode="lexical").retrieve(words)
    assert [n.node.metadata["signals"] for n in lexical] == [["lexical"]]


def test_filters_apply(corpus_store: Store) -> None:
    by_dict = LatestoreRetriever(corpus_store, similarity_top_k=10, filter={"lang": "de"})
    assert [n.node.metadata["lang"] for n in by_dict.retrieve(QUERY)] == ["de"]

    either = MetadataFilters(
        filters=[_f("topic", "food"), _f("year", 2004, FilterOperator.LTE)],
        condition=FilterCondition.OR,
    )
    nodes = LatestoreRetriever(corpus_store, similarity_top_k=10, filters=either).retrieve(QUERY)
    assert {n.node.node_id for n in nodes} == {
        "cooking-1",
        "cooking-2",
        "databases-1",
        "databases-2",
    }

    # `filter` and `filters` combine with AND
    both = LatestoreRetriever(
        corpus_store, similarity_top_k=10, filter={"document_id": "cooking"}, filters=either
    )
    assert {n.node.node_id for n in both.retrieve(QUERY)} == {"cooking-1", "cooking-2"}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (
            [_f("year", 2020, FilterOperator.GT)],
            {"retrieval-2", "cooking-2", "geology-3", "figure-1"},
        ),
        (
            [_f("year", 2021, FilterOperator.GTE), _f("year", 2022, FilterOperator.LT)],
            {"retrieval-2"},
        ),
        (
            [_f("topic", ["db", "earth"], FilterOperator.IN), _f("lang", "en", FilterOperator.NE)],
            {"geology-3"},
        ),
        ([_f("page_number", 3), _f("topic", "ir")], {"retrieval-3"}),
    ],
)
def test_metadata_filter_operators(
    corpus_store: Store, filters: list[MetadataFilter | MetadataFilters], expected: set[str]
) -> None:
    retriever = LatestoreRetriever(
        corpus_store, similarity_top_k=20, filters=MetadataFilters(filters=filters)
    )
    assert {n.node.node_id for n in retriever.retrieve(QUERY)} == expected


def test_metadata_filters_translation() -> None:
    nested = MetadataFilters(
        filters=[
            _f("lang", "en"),
            MetadataFilters(
                filters=[
                    _f("year", 2000, FilterOperator.LT),
                    _f("topic", "ir", FilterOperator.NIN),
                ],
                condition=FilterCondition.OR,
            ),
        ]
    )
    assert metadata_filters_to_filter(nested) == {
        "$and": [
            {"lang": {"$eq": "en"}},
            {"$or": [{"year": {"$lt": 2000}}, {"topic": {"$nin": ["ir"]}}]},
        ]
    }
    negated = MetadataFilters(filters=[_f("a", 1), _f("b", 2)], condition=FilterCondition.NOT)
    assert metadata_filters_to_filter(negated) == {
        "$not": {"$or": [{"a": {"$eq": 1}}, {"b": {"$eq": 2}}]}
    }
    assert metadata_filters_to_filter(MetadataFilters(filters=[])) is None
    with pytest.raises(FilterError, match="text_match"):
        metadata_filters_to_filter(
            MetadataFilters(filters=[_f("topic", "i", FilterOperator.TEXT_MATCH)])
        )


def test_threshold_and_top_k_validation(corpus_store: Store) -> None:
    scores = [n.score for n in LatestoreRetriever(corpus_store).retrieve(QUERY)]
    strict = LatestoreRetriever(corpus_store, score_threshold=scores[0])
    assert [n.score for n in strict.retrieve(QUERY)] == scores[:1]
    with pytest.raises(ValueError):
        LatestoreRetriever(corpus_store, similarity_top_k=0)
