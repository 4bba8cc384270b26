"""Adapters that expose a Store as a native retriever of other frameworks.

Each adapter lives in its own module and imports its framework on import, so the core
package never depends on LangChain or LlamaIndex:

>>> from latestore.integrations.langchain import LatestoreRetriever    # doctest: +SKIP
>>> from latestore.integrations.llamaindex import LatestoreRetriever   # doctest: +SKIP

The helpers here need no framework.
"""

if __name__ != "latestore.integrations":
    raise ImportError(
        f"import latestore.integrations, not {__name__!r} (see pyproject package-dir)"
    )


from latestore.integrations._common import (
    IMAGE_URI_PREFIX,
    combine_filters,
    hit_metadata,
    image_uri,
    page_id_from_image_uri,
    page_image,
)

__all__ = [
    "IMAGE_URI_PREFIX",
    "combine_filters",
    "hit_metadata",
    "image_uri",
    "page_id_from_image_uri",
    "page_image",
]
