"""POST /pages bodies: vector rows parsed straight into arrays, and base64 vectors.

A nested-list body used to be held as Python floats twice over (about 8 times its size
at the peak); serve/vector_json.py parses each page's rows into an array as soon as the
page is read, and EncodedVectors takes the rows as base64 bytes.
"""

from __future__ import annotations

import base64
import json
import tracemalloc
from typing import Any

import httpx
import numpy as np
import pytest

from latestore.serve.vector_json import loads_pages
from tests.serve.conftest import DIM, N_PAGES, Served


def encoded(vectors: np.ndarray, dtype: str = "float32") -> dict[str, Any]:
    raw = np.ascontiguousarray(vectors, dtype="<f4" if dtype == "float32" else "<f2").tobytes()
    return {"dtype": dtype, "shape": list(vectors.shape), "data": base64.b64encode(raw).decode()}


def test_page_rows_become_float32_arrays_and_the_rest_stays_as_sent() -> None:
    rng = np.random.default_rng(1)
    rows = rng.standard_normal((7, 5)).tolist()
    lookalike = {"vectors": [[1.5, 2.25], [0.1, 3.0]]}  # metadata shaped like a page
    with_ints = {"vectors": [[1, 2.5], [True, 0.5]]}
    body = {
        "pages": [
            {"vectors": rows, "text": "a", "metadata": {"x": lookalike, "y": with_ints}},
            {"vectors": [[1, 2], [3, 4]]},  # ints: parsed as before, checked by the model
            {"vectors": [[1.0, 2.0], [3.0]]},  # ragged: left for the model to refuse
            {"text": "no vectors", "metadata": {"vectors": [[0.5]]}},
        ],
        "other": lookalike,
    }
    data = loads_pages(json.dumps(body).encode())
    first = data["pages"][0]["vectors"]
    assert isinstance(first, np.ndarray) and first.dtype == np.float32
    assert np.array_equal(first, np.asarray(rows, dtype=np.float32))  # same rounding
    # Everything that is not a page's rows comes back exactly as json.loads gives it.
    expected = json.loads(json.dumps(body))
    expected["pages"][0]["vectors"] = data["pages"][0]["vectors"]
    assert data == expected
    assert type(data["pages"][0]["metadata"]["y"]["vectors"][0][0]) is int


def test_malformed_json_is_the_same_error_as_json_loads() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads_pages(b'{"pages": [{"vectors": [[1.0, 2.0]]}')


def test_parsing_peaks_well_under_the_old_parse() -> None:
    """tracemalloc counts Python objects and numpy buffers: the old parse held every
    number as a Python float (32 bytes for about 9 bytes of JSON)."""
    rng = np.random.default_rng(2)
    pages = [
        {"vectors": np.round(rng.standard_normal((100, 128)), 4).tolist(), "text": f"p{i}"}
        for i in range(40)
    ]
    body = json.dumps({"pages": pages}).encode()
    del pages

    def peak(parse: Any) -> int:
        tracemalloc.start()
        try:
            parsed = parse(body)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            del parsed

    old, new = peak(json.loads), peak(loads_pages)
    assert old > 3 * len(body)  # what is avoided, before any model is even built
    assert new < 2.5 * len(body), (new / len(body), old / len(body))


async def test_nested_lists_and_base64_add_the_same_pages(
    client: httpx.AsyncClient, served: Served, rng: np.random.Generator
) -> None:
    vectors = rng.standard_normal((6, DIM)).astype(np.float32)
    half = rng.standard_normal((4, DIM)).astype(np.float16)
    body = {
        "pages": [
            {"vectors": vectors.tolist(), "external_id": "lists"},
            {"vectors": encoded(vectors), "external_id": "b64"},
            {"vectors": half.astype(np.float32).tolist(), "external_id": "lists16"},
            {"vectors": encoded(half, "float16"), "external_id": "b64-16"},
        ]
    }
    response = await client.post("/pages", json=body)
    assert response.status_code == 200, response.text
    ids = response.json()["ids"]
    got = {p.external_id: p for p in served.store.get_many(ids)}
    assert got["lists"].content_hash == got["b64"].content_hash
    assert got["lists16"].content_hash == got["b64-16"].content_hash
    lists, b64 = served.store.page_vectors_many(ids[:2])
    assert np.array_equal(lists, b64) and lists.shape == (6, DIM)
    hits = served.store.search(vectors, k=2)
    assert {h.page_id for h in hits} == {ids[0], ids[1]}


@pytest.mark.parametrize(
    ("vectors", "status", "error"),
    [
        ({"shape": [2, DIM], "data": "@@@"}, 400, "InvalidInputError"),
        ({"shape": [3, DIM], "data": base64.b64encode(b"\0" * 8 * DIM).decode()}, 400, None),
        ({"shape": [0, DIM], "data": ""}, 400, None),
        ({"shape": [2, DIM], "data": "", "dtype": "float64"}, 422, "ValidationError"),
        ({"shape": [2, DIM], "data": "", "extra": 1}, 422, "ValidationError"),
        ({"shape": [2], "data": ""}, 422, "ValidationError"),
        ([[1.0, 2.0], [3.0]], 400, "InvalidVectorError"),  # ragged rows, as before
        ([[1.0] * (DIM + 1)], 400, "DimensionMismatchError"),
    ],
)
async def test_bad_vectors_are_refused_and_nothing_is_added(
    client: httpx.AsyncClient,
    served: Served,
    vectors: Any,
    status: int,
    error: str | None,
) -> None:
    good = {"vectors": [[0.5] * DIM], "external_id": "fine"}
    response = await client.post("/pages", json={"pages": [good, {"vectors": vectors}]})
    assert response.status_code == status, response.text
    if error is not None:
        assert response.json()["error"] == error
    assert served.store.count() == N_PAGES


async def test_the_openapi_schema_shows_both_forms(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    page = schema["components"]["schemas"]["PageIn"]["properties"]["vectors"]
    forms = json.dumps(page)
    assert "EncodedVectors" in forms and '"array"' in forms
    assert "EncodedVectors" in schema["components"]["schemas"]
