"""LlamaIndex retriever over a Store.

Install with ``pip install 'latestore[llamaindex]'``.

Text pages come back as ``TextNode``, pages with an image as ``ImageNode``, each in a
``NodeWithScore`` carrying the exact MaxSim score. A node's id is the page's
``external_id`` when it has one, otherwise ``str(page_id)``; its source document
(``node.ref_doc_id``) is the page's ``document_id``.

Examples
--------
>>> from latestore import Store
>>> from latestore.integrations.llamaindex import LatestoreRetriever
>>> retriever = LatestoreRetriever(Store.open("pages.db"), similarity_top_k=5)  # doctest: +SKIP
>>> retriever.retrieve("how does MaxSim score a page?")                         # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from typing import Any

from latestore.errors import FilterError
from latestore.integrations._common import (
    HIT_KEYS,
    combine_filters,
    hit_metadata,
    missing_framework,
)
from latestore.models import SearchHit
from latestore.store import Store

try:
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.constants import DEFAULT_SIMILARITY_TOP_K
    from llama_index.core.schema import (
        ImageNode,
        NodeRelationship,
        NodeWithScore,
        QueryBundle,
        RelatedNodeInfo,
        TextNode,
    )
    from llama_index.core.vector_stores.types import (
        FilterCondition,
        FilterOperator,
        MetadataFilters,
    )
except ImportError as exc:
    raise missing_framework(__name__, "llama-index-core", "llamaindex") from exc

__all__ = ["LatestoreRetriever", "metadata_filters_to_filter", "to_node"]

_OPERATORS = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
}
# Bookkeeping keys that would only add noise to what an LLM or embedder reads.
_HIDDEN_KEYS = [*HIT_KEYS, "image_uri", "image_path"]


class LatestoreRetriever(BaseRetriever):
    """Late-interaction (MaxSim) retrieval from a latestore Store.

    Parameters
    ----------
    store:
        An open Store. Searches may run from several threads at once.
    similarity_top_k:
        How many nodes to return.
    filter:
        A latestore filter dict (see ``latestore.store.filters``).
    filters:
        LlamaIndex ``MetadataFilters``; translated with :func:`metadata_filters_to_filter`
        and ANDed with ``filter``.
    score_threshold:
        Drop hits scoring below this (MaxSim scores grow with query length; in hybrid
        mode the score is the fused one).
    mode:
        ``"maxsim"``, ``"hybrid"`` (MaxSim fused with the store's full-text index) or
        ``"lexical"``; default: the store's ``search_mode``. See
        ``latestore.store.search_modes``.
    include_images:
        Put each image page's bytes into ``ImageNode.image`` (base64) for multimodal
        synthesis. Off by default: it reads every hit's image from the database.
    """

    def __init__(
        self,
        store: Store,
        *,
        similarity_top_k: int = DEFAULT_SIMILARITY_TOP_K,
        filter: Mapping[str, Any] | None = None,
        filters: MetadataFilters | None = None,
        score_threshold: float | None = None,
        mode: str | None = None,
        include_images: bool = False,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if similarity_top_k < 1:
            raise ValueError(f"similarity_top_k must be at least 1, got {similarity_top_k}")
        self.store = store
        self.similarity_top_k = similarity_top_k
        self.filter = combine_filters(
            filter, None if filters is None else metadata_filters_to_filter(filters)
        )
        self.score_threshold = score_threshold
        self.mode = mode
        self.include_images = include_images
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.store.search_many(
            [query_bundle.query_str], k=self.similarity_top_k, filter=self.filter, mode=self.mode
        )[0]
        threshold = self.score_threshold
        return [
            NodeWithScore(node=to_node(hit, self._image(hit)), score=hit.score)
            for hit in hits
            if threshold is None or hit.score >= threshold
        ]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # Encoding and MaxSim are CPU/GPU bound; a worker thread keeps the event loop free.
        return await asyncio.to_thread(self._retrieve, query_bundle)

    def _image(self, hit: SearchHit) -> bytes | None:
        if not (self.include_images and hit.has_image):
            return None
        return self.store.image(hit.page_id)


def to_node(hit: SearchHit, image: bytes | None = None) -> TextNode:
    """A TextNode (or ImageNode for a page with an image) for a search hit."""
    fields: dict[str, Any] = {
        "id_": hit.external_id if hit.external_id is not None else str(hit.page_id),
        "text": hit.text or "",
        "metadata": hit_metadata(hit),
        "excluded_llm_metadata_keys": list(_HIDDEN_KEYS),
        "excluded_embed_metadata_keys": list(_HIDDEN_KEYS),
    }
    if hit.document_id is not None:
        fields["relationships"] = {
            NodeRelationship.SOURCE: RelatedNodeInfo(node_id=hit.document_id)
        }
    if not hit.has_image:
        return TextNode(**fields)
    return ImageNode(
        **fields,
        image=None if image is None else base64.b64encode(image).decode("ascii"),
        image_path=hit.image_path,
    )


def metadata_filters_to_filter(filters: MetadataFilters) -> dict[str, Any] | None:
    """Translate LlamaIndex ``MetadataFilters`` into a latestore filter dict.

    Supports the operators EQ, NE, GT, GTE, LT, LTE, IN and NIN, and the conditions
    AND, OR and NOT (true when none of the filters match, as in LlamaIndex's vector
    stores), nested to any depth. Other operators raise FilterError rather than
    being dropped, which would widen the search. Keys name page fields or metadata
    keys exactly as in latestore filters.

    Examples
    --------
    >>> from llama_index.core.vector_stores.types import MetadataFilter
    >>> metadata_filters_to_filter(MetadataFilters(filters=[
    ...     MetadataFilter(key="year", value=2020, operator=FilterOperator.GTE),
    ...     MetadataFilter(key="lang", value=["en", "de"], operator=FilterOperator.IN),
    ... ]))
    {'$and': [{'year': {'$gte': 2020}}, {'lang': {'$in': ['en', 'de']}}]}
    """
    parts = [
        metadata_filters_to_filter(f) if isinstance(f, MetadataFilters) else _one(f)
        for f in filters.filters
    ]
    clauses = [p for p in parts if p is not None]
    if not clauses:
        return None
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.NOT:
        return {"$not": clauses[0] if len(clauses) == 1 else {"$or": clauses}}
    if len(clauses) == 1:
        return clauses[0]
    return {"$and" if condition == FilterCondition.AND else "$or": clauses}


def _one(item: Any) -> dict[str, Any]:
    # ExactMatchFilter (LlamaIndex's legacy class) has no operator and means equality.
    operator = getattr(item, "operator", FilterOperator.EQ)
    op = _OPERATORS.get(operator)
    if op is None:
        raise FilterError(
            f"LlamaIndex filter operator {operator.value!r} on {item.key!r} has no latestore "
            f"equivalent; supported: {sorted(o.value for o in _OPERATORS)}"
        )
    value = item.value
    if op in ("$in", "$nin") and not isinstance(value, list):
        value = [value]
    return {item.key: {op: value}}
