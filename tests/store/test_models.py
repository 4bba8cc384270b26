"""Page, SearchHit and StoreConfig validation: typed errors from one hierarchy."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from latestore import IndexConfig, Page, SearchConfig, StoreConfig
from latestore.errors import EmptyPageError, InvalidPageError, LatestoreError


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({}, EmptyPageError),
        ({"text": ""}, EmptyPageError),  # the README's promise; it was an EncoderError
        ({"text": " \n\t\u3000"}, EmptyPageError),  # blank: refused by the CLI, now here too
        ({"text": "", "metadata": {"k": 1}}, EmptyPageError),
        ({"text": "a", "page_number": -1}, InvalidPageError),
        ({"text": "a", "page_number": 2**31}, InvalidPageError),  # PostgreSQL's INTEGER
        ({"text": "a", "metadata": {"x": float("nan")}}, InvalidPageError),
        ({"text": "a", "metadata": {"": 1}}, InvalidPageError),
        ({"text": "a", "metadata": {"blob": "x" * 70_000}}, InvalidPageError),
        ({"text": "a", "unknown_field": 1}, InvalidPageError),
        ({"text": "a", "external_id": ""}, InvalidPageError),
        ({"text": 3}, InvalidPageError),
    ],
)
def test_bad_pages_raise_typed_errors(fields: dict, error: type[Exception]) -> None:  # type: ignore[type-arg]
    with pytest.raises(error):
        Page(**fields)
    assert issubclass(error, LatestoreError) and issubclass(error, ValueError)


def test_content_hash_tracks_content_not_metadata() -> None:
    a = Page(text="same", metadata={"v": 1})
    b = Page(text="same", metadata={"v": 2})
    c = Page(text="other")
    assert a.content_hash() == b.content_hash() != c.content_hash()
    v = Page(vectors=np.ones((2, 3)))
    assert v.content_hash() != Page(vectors=np.ones((3, 3))).content_hash()


def test_config_rejects_bad_fields() -> None:
    with pytest.raises(ValidationError):
        StoreConfig(search=SearchConfig(nprobe=0))
    with pytest.raises(ValidationError):
        StoreConfig(index=IndexConfig(ivf_codec="zip"))  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        StoreConfig(colour="blue")  # type: ignore[call-arg]


def test_blank_text_is_fine_beside_other_content() -> None:
    assert Page(text="  ", vectors=np.ones((1, 3))).text == "  "
    assert Page(text="", image=b"\x89PNG").text == ""
