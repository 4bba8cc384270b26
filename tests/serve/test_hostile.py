"""Hostile and unlucky requests: each gets a clean JSON error and the store stays intact."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from latestore.cli import app as cli_app
from latestore.serve import ServeSettings, create_app
from latestore.serve.service import safe_file_name
from latestore.serve.settings import InsecureBindError
from tests.serve.conftest import DIM, N_PAGES, Served, vector_page
from tests.serve.live import live_server
from tests.store.helpers import query_from

KEY = "s3cret-key-for-tests"


def asgi(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")  # type: ignore[arg-type]


async def test_oversized_bodies_are_refused_declared_or_streamed(served: Served) -> None:
    app = create_app(served.store, ServeSettings(store=served.url, max_body_bytes=4096))
    big = {"query": [[0.5] * DIM] * 100}
    async with asgi(app) as client:
        declared = await client.post("/search", json=big)
        assert declared.status_code == 413 and declared.json()["error"] == "PayloadTooLarge"

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b" " * 1000  # no Content-Length: sent chunked

        streamed = await client.post(
            "/pages", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        small = await client.post("/search", json={"query": [[0.5] * DIM], "k": 2})
        assert small.status_code == 200
    assert served.store.count() == N_PAGES


async def test_bad_json_and_bad_shapes(client: httpx.AsyncClient, served: Served) -> None:
    json_header = {"content-type": "application/json"}
    bad = await client.post("/search", content=b'{"query": [[1, 2', headers=json_header)
    assert bad.status_code == 400 and bad.json()["error"] == "BadJSON"
    not_object = await client.post("/pages", content=b"[1, 2, 3]", headers=json_header)
    assert not_object.status_code == 422
    binary = await client.post("/search", content=b"\xff\xfe\x00garbage", headers=json_header)
    assert binary.status_code in (400, 422)
    deep = b"[" * 100_000 + b"]" * 100_000
    nested = await client.post("/search", content=deep, headers=json_header)
    assert nested.status_code in (400, 422), nested.text
    # A page may not name a file on the server: image_path is not part of the API.
    named = await client.post(
        "/pages", json={"pages": [{"text": "x", "image_path": "/etc/passwd"}]}
    )
    assert named.status_code == 422 and "image_path" in named.text
    not_b64 = await client.post("/pages", json={"pages": [{"image_base64": "@@@", "text": "x"}]})
    assert not_b64.status_code == 400
    too_many = await client.post("/search", json={"queries": [[[1.0] * DIM]] * 65})
    assert too_many.status_code == 400
    assert served.store.count() == N_PAGES


@pytest.mark.parametrize(
    "path",
    [
        "/pages/..%2F..%2Fetc%2Fpasswd",
        "/pages/..%2F..%2Fetc%2Fpasswd/image",
        "/pages/%2Fetc%2Fpasswd/image",
        "/pages/1%2F..%2F..%2Fstore.db/image",
        "/pages/-1",
        "/pages/0/image",
        "/pages/99999999999999999999999",
        "/pages/1e3/image",
        "/pages/%00/image",
        "/static/../../etc/passwd",
        "/../store.db",
    ],
)
async def test_path_like_ids_reach_no_file(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code in (400, 404, 422), (path, response.status_code)
    assert response.headers["content-type"] == "application/json"
    assert "root:" not in response.text


async def test_every_endpoint_needs_the_key(served: Served) -> None:
    app = create_app(served.store, ServeSettings(store=served.url, api_key=KEY))
    query = {"query": [[0.5] * DIM], "k": 2}
    calls = [
        ("GET", "/", None),
        ("GET", "/health", None),
        ("GET", "/ready", None),
        ("GET", "/info", None),
        ("GET", "/docs", None),
        ("GET", "/docs-assets", None),
        ("GET", "/docs-assets/swagger-ui.css", None),
        ("GET", "/summary", None),
        ("GET", "/static/page.js", None),
        ("GET", "/static/page.css", None),
        ("GET", "/openapi.json", None),
        ("POST", "/search", query),
        ("POST", "/explain", {"query": [[0.5] * DIM], "page_id": 1}),
        ("GET", "/pages/1", None),
        ("GET", "/pages/1/image", None),
        ("GET", "/pages/1/explain?q=x", None),
        ("POST", "/pages", {"pages": [{"vectors": [[0.5] * DIM]}]}),
        ("POST", "/delete", {"ids": [1]}),
        ("DELETE", "/pages/1", None),
        ("POST", "/upload", None),
    ]
    # Every route the app has is in the list above, so a new one cannot skip the check.
    routed = {getattr(r, "path", "") for r in app.routes} - {"/docs/oauth2-redirect", "/redoc"}
    named = {path.split("?")[0].replace("/1", "/{page_id}") for _, path, _ in calls}
    assert routed <= named, routed - named
    async with asgi(app) as client:
        for method, path, body in calls:
            for headers in ({}, {"X-API-Key": "wrong-key-123"}, {"Authorization": "Bearer nope"}):
                response = await client.request(method, path, json=body, headers=headers)
                assert response.status_code == 401, (method, path, headers)
                assert response.json()["error"] == "Unauthorized"
        assert served.store.count() == N_PAGES
        good = await client.post("/search", json=query, headers={"X-API-Key": KEY})
        assert good.status_code == 200
        bearer = await client.get("/info", headers={"Authorization": f"Bearer {KEY}"})
        assert bearer.status_code == 200
        # A browser posts the key to /login once: an HttpOnly, SameSite=Strict cookie,
        # and the key in no URL (URLs are logged and kept in history).
        landing = await client.post("/login", data={"key": KEY})
        assert landing.status_code == 303 and landing.headers["location"] == "/"
        cookie = landing.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        page = await client.get("/", headers={"cookie": cookie.split(";")[0]})
        assert page.status_code == 200 and "<form" in page.text
        client.cookies.clear()  # httpx kept the cookie; a stranger has none
        wrong = await client.post("/login", data={"key": "not-the-key"})
        assert wrong.status_code == 401
        in_url = await client.get("/", params={"key": KEY})
        assert in_url.status_code == 401 and "set-cookie" not in in_url.headers


def test_listening_beyond_loopback_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.org"):
        with pytest.raises(InsecureBindError, match="API key"):
            ServeSettings(store="x.db", host=host)
        ServeSettings(store="x.db", host=host, api_key=KEY)
    for host in ("127.0.0.1", "localhost", "::1", "127.1.2.3"):
        ServeSettings(store="x.db", host=host)
    monkeypatch.delenv("LATESTORE_API_KEY", raising=False)
    result = CliRunner().invoke(cli_app, ["serve", "--store", "x.db", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "API key" in result.output


def test_cors_is_off_unless_configured(served: Served) -> None:
    from fastapi.testclient import TestClient

    preflight = {
        "Origin": "http://evil.example",
        "Access-Control-Request-Method": "POST",
    }
    closed = TestClient(create_app(served.store, ServeSettings(store=served.url)))
    response = closed.options("/search", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    opened = TestClient(
        create_app(
            served.store, ServeSettings(store=served.url, cors_origins=("http://app.example",))
        )
    )
    allowed = opened.options("/search", headers={**preflight, "Origin": "http://app.example"})
    assert allowed.headers["access-control-allow-origin"] == "http://app.example"
    refused = opened.options("/search", headers=preflight)
    assert "access-control-allow-origin" not in refused.headers


async def test_a_full_queue_answers_503(served: Served) -> None:
    app = create_app(served.store, ServeSettings(store=served.url, search_workers=1, queue_size=1))
    release = threading.Event()
    pool = app.state.reads
    # Occupy the only worker and the only queue place with calls that wait on us.
    blockers = [asyncio.create_task(pool.run(release.wait)) for _ in range(2)]
    await asyncio.sleep(0.05)
    async with asgi(app) as client:
        busy = await client.post("/search", json={"query": [[0.5] * DIM], "k": 2})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert busy.json()["error"] == "ServerBusy"
        release.set()
        await asyncio.gather(*blockers)
        fine = await client.post("/search", json={"query": [[0.5] * DIM], "k": 2})
        assert fine.status_code == 200
    assert pool.refused == 1


def test_upload_names_are_flattened() -> None:
    assert safe_file_name("../../etc/passwd") == "passwd"
    assert safe_file_name("..\\..\\win.ini") == "win.ini"
    assert safe_file_name("/abs/a b;rm -rf.pdf") == "a_b_rm_-rf.pdf"
    assert safe_file_name("...") == "upload"


def test_100_concurrent_searches_during_an_ingest(served: Served, rng: np.random.Generator) -> None:
    """Over a real loopback port: searches keep answering while pages are written."""
    app = create_app(
        served.store, ServeSettings(store=served.url, search_workers=8, queue_size=128)
    )
    queries = [query_from(rng, served.centres) for _ in range(100)]
    batches = [
        [vector_page(rng, external_id=f"ingest-{b}-{i}", metadata={"batch": b}) for i in range(50)]
        for b in range(8)
    ]
    with live_server(app) as base:
        added: list[int] = []
        failures: list[BaseException] = []

        def ingest() -> None:
            try:
                with httpx.Client(base_url=base, timeout=120) as http:
                    for batch in batches:
                        body = {
                            "pages": [
                                {
                                    "vectors": p.vectors.tolist(),  # type: ignore[union-attr]
                                    "external_id": p.external_id,
                                    "metadata": p.metadata,
                                }
                                for p in batch
                            ]
                        }
                        response = http.post("/pages", json=body)
                        assert response.status_code == 200, response.text
                        added.extend(response.json()["ids"])
            except BaseException as exc:  # reported by the test thread below
                failures.append(exc)

        writer = threading.Thread(target=ingest)
        writer.start()

        async def search_all() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=120) as http:
                return await asyncio.gather(
                    *(http.post("/search", json={"query": q.tolist(), "k": 5}) for q in queries)
                )

        responses = asyncio.run(search_all())
        writer.join(timeout=300)
        assert not failures, failures
        assert [r.status_code for r in responses] == [200] * 100
        assert all(len(r.json()["hits"]) == 5 for r in responses)
    assert len(added) == 400 and served.store.count() == N_PAGES + 400
    # Intact: every query ranks now as an exhaustive search of the store does.
    for query in queries[:10]:
        approx = served.store.search(query, k=5, exhaustive=True)
        assert len(approx) == 5
    assert sorted(served.store.page_ids({"batch": {"$exists": True}})) == sorted(added)
