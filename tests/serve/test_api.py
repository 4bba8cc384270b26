"""The HTTP API against the real app and a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import json

import httpx
import numpy as np
from PIL import Image

from tests.serve.conftest import DIM, N_PAGES, Served, png
from tests.store.helpers import query_from


async def test_search_matches_the_store_one_query_and_a_batch(
    client: httpx.AsyncClient, served: Served, rng: np.random.Generator
) -> None:
    queries = [query_from(rng, served.centres) for _ in range(3)]
    spec = {"year": {"$gte": 2010}}
    response = await client.post(
        "/search", json={"query": queries[0].tolist(), "k": 7, "filter": spec}
    )
    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    direct = served.store.search(queries[0], k=7, filter=spec)
    assert [h["page_id"] for h in hits] == [h.page_id for h in direct]
    assert np.allclose([h["score"] for h in hits], [h.score for h in direct], atol=1e-5)
    assert all(h["metadata"]["year"] >= 2010 for h in hits)
    assert [h["rank"] for h in hits] == list(range(1, 8))

    batch = await client.post(
        "/search", json={"queries": [q.tolist() for q in queries], "k": 5, "exhaustive": True}
    )
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    expected = served.store.search_many(queries, k=5, exhaustive=True)
    assert [[h["page_id"] for h in r] for r in results] == [
        [h.page_id for h in e] for e in expected
    ]


async def test_page_metadata_and_unknown_pages(client: httpx.AsyncClient, served: Served) -> None:
    response = await client.get("/pages/3")
    assert response.status_code == 200
    page = response.json()
    stored = served.store.get(3)
    assert page["external_id"] == stored.external_id == "doc-2"
    assert page["n_tokens"] == stored.n_tokens and page["content_hash"] == stored.content_hash
    assert "image_path" not in page  # server paths are not shown
    missing = await client.get("/pages/999999")
    assert missing.status_code == 404
    assert missing.json()["error"] == "PageNotFoundError"


async def test_images_and_thumbnails_only_through_page_ids(client: httpx.AsyncClient) -> None:
    original = await client.get("/pages/1/image")
    assert original.status_code == 200 and original.headers["content-type"] == "image/png"
    assert original.content == png()
    thumb = await client.get("/pages/1/image", params={"size": 40})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    with Image.open(__import__("io").BytesIO(thumb.content)) as image:
        assert max(image.size) == 40 and image.size == (30, 40)
    no_image = await client.get("/pages/2/image")
    assert no_image.status_code == 404 and no_image.json()["error"] == "PageHasNoImageError"
    too_big = await client.get("/pages/1/image", params={"size": 100_000})
    assert too_big.status_code == 400


async def test_add_json_pages_and_refuse_wrong_dims_atomically(
    client: httpx.AsyncClient, served: Served, rng: np.random.Generator
) -> None:
    good = {
        "vectors": rng.standard_normal((4, DIM)).tolist(),
        "external_id": "new-1",
        "text": "a new page",
        "metadata": {"year": 2030},
        "image_base64": base64.b64encode(png(20, 20)).decode(),
    }
    response = await client.post("/pages", json={"pages": [good]})
    assert response.status_code == 200, response.text
    (new_id,) = response.json()["ids"]
    assert served.store.get(new_id).metadata == {"year": 2030}
    assert (await client.get(f"/pages/{new_id}/image")).content == png(20, 20)

    wrong = {"vectors": rng.standard_normal((4, DIM + 1)).tolist(), "external_id": "new-2"}
    other = {"vectors": rng.standard_normal((4, DIM)).tolist(), "external_id": "new-3"}
    refused = await client.post("/pages", json={"pages": [other, wrong]})
    assert refused.status_code == 400
    assert refused.json()["error"] == "DimensionMismatchError"
    assert served.store.count() == N_PAGES + 1  # neither page of the refused batch


async def test_delete_by_ids_external_ids_and_filter(
    client: httpx.AsyncClient, served: Served
) -> None:
    before = served.store.count()
    response = await client.post("/delete", json={"ids": [5], "external_ids": ["doc-10"]})
    assert response.status_code == 200 and response.json() == {"deleted": 2}
    by_filter = await client.post("/delete", json={"filter": {"year": 2024}})
    matching = sum(1 for i in range(N_PAGES) if 2000 + i % 25 == 2024 and i not in (4, 10))
    assert by_filter.json() == {"deleted": matching}
    assert served.store.count() == before - 2 - matching
    one = await client.delete("/pages/7")
    assert one.json() == {"deleted": 1}
    again = await client.delete("/pages/7")
    assert again.status_code == 404
    nothing = await client.post("/delete", json={})
    assert nothing.status_code == 422
    # Ids with a filter are one transaction: a bad filter leaves the ids' pages too.
    count = served.store.count()
    refused = await client.post("/delete", json={"ids": [8], "filter": {"no_such_key": 1}})
    assert refused.status_code == 400 and served.store.count() == count
    both = await client.post("/delete", json={"ids": [8], "filter": {"page_id": {"$in": [8, 9]}}})
    assert both.json() == {"deleted": 2} and served.store.count() == count - 2


async def test_info_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["pages"] == N_PAGES
    info = (await client.get("/info")).json()
    assert info["pages"] == N_PAGES and info["store"]["dim"] == DIM
    assert "index_dir" not in info["store"]
    assert info["server"]["search"]["workers"] >= 1
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = (await client.get("/openapi.json")).json()
    assert {"/search", "/explain", "/pages", "/upload", "/delete", "/info"} <= set(schema["paths"])


async def test_explain_a_vector_query_is_exact_maxsim(
    client: httpx.AsyncClient, served: Served, rng: np.random.Generator
) -> None:
    query = query_from(rng, served.centres)
    response = await client.post("/search", json={"query": query.tolist(), "k": 3, "explain": True})
    for hit in response.json()["hits"]:
        why = hit["explanation"]
        page = served.store.page_vectors(hit["page_id"])
        unit = query / np.linalg.norm(query, axis=1, keepdims=True)
        sims = unit @ page.T
        assert [m["page_token"] for m in why["matches"]] == sims.argmax(axis=1).tolist()
        assert np.isclose(why["score"], sims.max(axis=1).sum(), atol=1e-4)
        assert np.isclose(why["score"], hit["score"], atol=1e-3)
        assert np.isclose(sum(m["share"] for m in why["matches"]), 1.0, atol=1e-4)
        # Vectors given by the caller have no tokenizer behind them: said, not guessed.
        assert why["positions"] == "unknown" and "caller-given" in why["positions_note"]
    single = await client.post("/explain", json={"query": query.tolist(), "page_id": 1})
    assert single.status_code == 200 and single.json()["page_id"] == 1


async def test_typed_errors_are_json_4xx(
    client: httpx.AsyncClient, rng: np.random.Generator
) -> None:
    query = rng.standard_normal((3, DIM)).tolist()
    cases = [
        ({"query": query, "filter": {"nope": 1}}, 400, "UnknownFilterFieldError"),
        ({"query": query, "filter": {"year": {"$near": 1}}}, 400, "UnknownFilterOperatorError"),
        ({"query": query, "k": 0}, 400, "InvalidInputError"),
        ({"query": query, "k": 10**6}, 400, "InvalidInputError"),
        ({"query": [[1.0] * (DIM - 1)]}, 400, "DimensionMismatchError"),
        ({"query": [[1.0] * DIM, [1.0]]}, 400, "InvalidVectorError"),
        # Python's JSON (which the server parses with) reads NaN; it must not reach a page.
        ({"query": [[float("nan")] * DIM]}, 400, "NonFiniteVectorError"),
        ({"query": "text, but the store has no model"}, 422, "EncoderError"),
        ({"query": query, "queries": [query]}, 422, "ValidationError"),
        ({"query": query, "k": "ten"}, 422, "ValidationError"),
    ]
    for body, status, name in cases:
        response = await client.post(
            "/search", content=json.dumps(body), headers={"content-type": "application/json"}
        )
        assert response.status_code == status, (body, response.text)
        assert response.json()["status"] == status
        assert response.json()["error"] == name, response.text
    unknown = await client.post("/explain", json={"query": query, "page_id": 424242})
    assert unknown.status_code == 404 and unknown.json()["error"] == "PageNotFoundError"
