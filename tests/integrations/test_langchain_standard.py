"""LangChain's own standard retriever tests, run against our retriever."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests

from latestore import Store
from latestore.integrations.langchain import LatestoreRetriever


class TestLatestoreRetrieverStandard(RetrieversIntegrationTests):
    store: Store

    @pytest.fixture(autouse=True)
    def _bind_store(self, corpus_store: Store) -> None:
        # The suite builds retrievers from a property, not a fixture; the shared store
        # reaches it through the test instance.
        self.store = corpus_store

    @property
    def retriever_constructor(self) -> type[LatestoreRetriever]:
        return LatestoreRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"store": self.store}

    @property
    def retriever_query_example(self) -> str:
        return "how does late interaction score documents?"
