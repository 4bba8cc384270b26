"""What both framework adapters share: hit metadata, image references, filter merging."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from latestore.errors import InvalidInputError
from latestore.models import SearchHit
from latestore.store import Store

IMAGE_URI_PREFIX = "latestore://page/"

# Keys the store writes into every retrieved document's metadata. They are applied
# after the page's own metadata so a user key of the same name cannot misreport
# where a hit came from or how it scored.
HIT_KEYS = (
    "page_id",
    "external_id",
    "document_id",
    "page_number",
    "source",
    "score",
    "rank",
    "signals",  # the rankings that found the page: "maxsim", "lexical"
)


def image_uri(page_id: int) -> str:
    """A reference to a page's stored image, resolvable with :func:`page_image`.

    Examples
    --------
    >>> image_uri(7)
    'latestore://page/7/image'
    """
    return f"{IMAGE_URI_PREFIX}{int(page_id)}/image"


def page_id_from_image_uri(uri: str) -> int:
    """The page id inside an :func:`image_uri` reference.

    Examples
    --------
    >>> page_id_from_image_uri("latestore://page/7/image")
    7
    """
    body = uri.removeprefix(IMAGE_URI_PREFIX)
    number, _, tail = body.partition("/")
    if body == uri or tail != "image" or not number.isdigit():
        raise InvalidInputError(f"not a latestore image reference: {uri!r:.200}")
    return int(number)


def page_image(store: Store, reference: str | int) -> bytes:
    """The image bytes of a page, given its id or its ``latestore://`` image reference.

    Pages stored by path (``Page(image_path=...)``) keep no bytes in the store, so
    their file is read instead.
    """
    page_id = reference if isinstance(reference, int) else page_id_from_image_uri(reference)
    data = store.image(page_id)
    if data is not None:
        return data
    page = store.get(page_id)
    if page.image_path is None:
        raise InvalidInputError(f"page {page_id} has no image")
    return Path(page.image_path).read_bytes()


def hit_metadata(hit: SearchHit) -> dict[str, Any]:
    """Flat metadata for a framework document: the page's own keys plus where it came from.

    Image pages also carry ``image_uri`` (always) and ``image_path`` (when the page was
    stored by path).
    """
    metadata = dict(hit.metadata)
    metadata.update({key: getattr(hit, key) for key in HIT_KEYS})
    metadata["signals"] = list(hit.signals)
    if hit.has_image:
        metadata["image_uri"] = image_uri(hit.page_id)
        if hit.image_path is not None:
            metadata["image_path"] = hit.image_path
    return metadata


def combine_filters(*filters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """AND the given latestore filter dicts together, skipping ``None`` and empty ones.

    A retriever's own filter is combined with a per-call one rather than replaced by
    it, so a filter that scopes a retriever (a tenant, a collection) cannot be dropped
    by a caller.

    Examples
    --------
    >>> combine_filters({"lang": "en"}, None)
    {'lang': 'en'}
    >>> combine_filters({"lang": "en"}, {"year": {"$gte": 2020}})
    {'$and': [{'lang': 'en'}, {'year': {'$gte': 2020}}]}
    """
    present = [dict(f) for f in filters if f]
    if not present:
        return None
    return present[0] if len(present) == 1 else {"$and": present}


def missing_framework(module: str, package: str, extra: str) -> ImportError:
    """The ImportError an adapter raises when its framework is not installed."""
    return ImportError(
        f"{module} needs {package}, which is not installed: pip install 'latestore[{extra}]'",
        name=package,
    )
