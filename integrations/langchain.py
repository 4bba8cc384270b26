"""LangChain retriever over a Store, and helpers to index LangChain Documents.

Install with ``pip install 'latestore[langchain]'``.

Document ids: a retrieved ``Document.id`` is the page's ``external_id`` when it has
one, otherwise ``str(page_id)``. :func:`add_documents` always sets an external id
(the Document's own ``id``, or a new UUID), so documents indexed through LangChain come
back with the ids they went in with and :func:`delete_documents` takes those ids. The
numeric page id is always in ``metadata["page_id"]``.

Examples
--------
>>> from latestore import Store
>>> from latestore.integrations.langchain import LatestoreRetriever, add_documents
>>> store = Store.open("pages.db")                                    # doctest: +SKIP
>>> add_documents(store, splitter.split_documents(loader.load()))     # doctest: +SKIP
>>> retriever = LatestoreRetriever(store=store, k=5, filter={"lang": "en"})  # doctest: +SKIP
>>> retriever.invoke("how does MaxSim score a page?", k=3)                 # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import Field

from latestore.integrations._common import combine_filters, hit_metadata, missing_framework
from latestore.models import Page, SearchHit
from latestore.store import Store

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:
    raise missing_framework(__name__, "langchain-core", "langchain") from exc

__all__ = ["LatestoreRetriever", "add_documents", "delete_documents", "to_document", "to_page"]

# Keyword arguments LangChain itself forwards from ``invoke`` to the retriever.
_FRAMEWORK_KWARGS = frozenset({"verbose"})


class LatestoreRetriever(BaseRetriever):
    """Late-interaction (MaxSim) retrieval from a latestore Store.

    Parameters
    ----------
    store:
        An open Store. Searches may run from several threads at once.
    k:
        How many documents to return; ``invoke(query, k=...)`` overrides it per call.
    filter:
        A latestore filter (see ``latestore.store.filters``) applied to every search. A
        per-call ``filter=`` is ANDed with it, never replaces it.
    score_threshold:
        Drop hits scoring below this. MaxSim scores are sums over query tokens, so a
        useful threshold depends on the encoder and on query length; in hybrid mode
        the score is the fused one.
    mode:
        ``"maxsim"``, ``"hybrid"`` (MaxSim fused with the store's full-text index) or
        ``"lexical"``; default: the store's ``search_mode``. ``invoke(query,
        mode=...)`` overrides it per call. See ``latestore.store.search_modes``.
    """

    store: Store
    k: int = Field(default=4, ge=1)
    filter: dict[str, Any] | None = None
    score_threshold: float | None = None
    mode: Literal["maxsim", "hybrid", "lexical"] | None = None

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: Mapping[str, Any] | None = None,
        score_threshold: float | None = None,
        mode: str | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        _reject_unknown(kwargs)
        return self._search(query, k, filter, score_threshold, mode)

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: Mapping[str, Any] | None = None,
        score_threshold: float | None = None,
        mode: str | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        _reject_unknown(kwargs)
        # Encoding and MaxSim are CPU/GPU bound; a worker thread keeps the event loop free.
        return await asyncio.to_thread(self._search, query, k, filter, score_threshold, mode)

    def _search(
        self,
        query: str,
        k: int | None,
        filter: Mapping[str, Any] | None,
        score_threshold: float | None,
        mode: str | None = None,
    ) -> list[Document]:
        hits = self.store.search_many(
            [query],
            k=self.k if k is None else k,
            filter=combine_filters(self.filter, filter),
            mode=self.mode if mode is None else mode,
        )[0]
        threshold = self.score_threshold if score_threshold is None else score_threshold
        return [to_document(hit) for hit in hits if threshold is None or hit.score >= threshold]


def _reject_unknown(kwargs: Mapping[str, Any]) -> None:
    # A misspelt option (``top_k=``) must fail loudly rather than silently return k hits.
    unknown = sorted(set(kwargs) - _FRAMEWORK_KWARGS)
    if unknown:
        raise TypeError(
            f"LatestoreRetriever got unexpected arguments {unknown}; "
            "it accepts k, filter, score_threshold and mode"
        )


def to_document(hit: SearchHit) -> Document:
    """A LangChain Document for a search hit (see the module docstring for its id)."""
    return Document(
        page_content=hit.text or "",
        id=hit.external_id if hit.external_id is not None else str(hit.page_id),
        metadata=hit_metadata(hit),
    )


def to_page(document: Document, external_id: str | None = None) -> Page:
    """A store Page for a LangChain Document, keeping all of its metadata.

    ``source``, ``page_number`` (or the PDF loaders' ``page``, as given) and
    ``document_id`` (defaulting to ``source``, so chunks of one file share it) are also
    lifted into the page's own fields, where filters and citations expect them.
    Metadata values that are not JSON (paths, dates) are stored as strings.
    """
    metadata = _json_metadata(document.metadata)
    source = metadata.get("source")
    source = source if isinstance(source, str) else None
    document_id = metadata.get("document_id")
    return Page(
        text=document.page_content,
        external_id=external_id or document.id or uuid.uuid4().hex,
        document_id=document_id if isinstance(document_id, str) else source,
        page_number=_page_number(metadata),
        source=source,
        metadata=metadata,
    )


def add_documents(
    store: Store,
    documents: Iterable[Document],
    *,
    ids: Sequence[str] | None = None,
    batch_size: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Encode and store LangChain Documents in one transaction; returns their ids.

    The id of each document is ``ids[i]`` when given, else ``Document.id``, else a new
    UUID; it becomes the page's external id. Adding a document whose id is already
    stored replaces that page, as LangChain vector stores do.
    """
    docs = list(documents)
    if ids is not None and len(ids) != len(docs):
        raise ValueError(f"got {len(ids)} ids for {len(docs)} documents")
    pages = [to_page(doc, None if ids is None else ids[i]) for i, doc in enumerate(docs)]
    store.upsert_pages(pages, batch_size=batch_size, on_progress=on_progress)
    return [page.external_id for page in pages if page.external_id is not None]


def delete_documents(store: Store, ids: Iterable[str]) -> int:
    """Delete documents by the ids :func:`add_documents` returned; returns how many were removed."""
    return store.delete(external_ids=list(ids))


def _json_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    # Loaders put Paths and datetimes into metadata; the store keeps JSON only.
    plain: dict[str, Any] = json.loads(json.dumps(dict(metadata), default=str))
    return plain


def _page_number(metadata: Mapping[str, Any]) -> int | None:
    for key in ("page_number", "page"):
        value = metadata.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None
