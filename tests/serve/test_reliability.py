"""A trusted server under hostile clients (issue 26 items 2, 5, 6): hostile structure is a
4xx, the API key is never in a log, slow clients are cut off, uploads carry no server
path."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from latestore import Page, PrecomputedVectors
from latestore.serve import ServeSettings, create_app
from latestore.serve.connections import timed_protocol
from latestore.store import Store
from tests.serve.conftest import DIM, N_PAGES, Served, ask
from tests.serve.live import free_port
from tests.serve.test_command import start, wait_ready

KEY = "a-key-for-the-command-test"  # what tests.serve.test_command.start sets
DEEP_JSONL = b'{"text": "x", "v": ' + b"[" * 50_000 + b"]" * 50_000 + b"}\n"


# -- item 2: hostile structure in an upload ------------------------------------------------
@pytest.fixture
def text_app(store_url: str, minilm: Any) -> Iterator[tuple[Store, Any]]:
    with Store.open(store_url, minilm) as store:
        store.add_pages([Page(text="Glazes melt onto pots in the kiln.")])
        yield store, create_app(store, ServeSettings(store=store_url))


def test_upload_of_a_50000_deep_line_is_a_400_naming_the_problem(
    text_app: tuple[Store, Any],
) -> None:
    store, app = text_app
    files = {"files": ("deep.jsonl", DEEP_JSONL, "application/octet-stream")}
    answer = ask(app, "POST", "/upload", files=files)
    assert answer.status_code == 400, answer.text
    message = answer.json()["message"]
    assert "/deep.jsonl: line 1: JSON nests too deeply" in message
    assert "latestore-uploads" not in message  # named as sent, not where it was kept
    assert store.count() == 1
    # With a readable file beside it, the upload succeeds and lists the failure.
    files = {"files": ("good.txt", b"Stoneware is fired hotter.", "text/plain")}
    both = ask(app, "POST", "/upload", files=[("files", files["files"]), ("files", files_deep())])
    assert both.status_code == 200, both.text
    assert both.json()["pages_added"] == 1 and len(both.json()["failed"]) == 1
    assert store.count() == 2


def files_deep() -> tuple[str, bytes, str]:
    return ("deep.jsonl", DEEP_JSONL, "application/octet-stream")


def test_upload_metadata_nested_10000_deep_is_a_400(text_app: tuple[Store, Any]) -> None:
    store, app = text_app
    deep = '{"a": ' + "[" * 10_000 + "]" * 10_000 + "}"
    files = {"files": ("a.txt", b"some text", "text/plain")}
    answer = ask(app, "POST", "/upload", files=files, data={"metadata": deep})
    assert answer.status_code == 400, answer.text
    assert "nests too deeply" in answer.json()["message"]
    assert store.count() == 1


def test_uploaded_pages_are_named_without_the_server_folder(tmp_path: Path, minilm: Any) -> None:
    folder = tmp_path / "server-side-uploads"
    db = tmp_path / "s.db"
    with Store.open(db, minilm) as store:
        app = create_app(store, ServeSettings(store=str(db), upload_dir=folder))
        files = {"files": ("../notes.txt", b"Kilns fire clay at high heat.", "text/plain")}
        report = ask(app, "POST", "/upload", files=files)
        assert report.status_code == 200, report.text
        assert str(tmp_path) not in report.text
        hits = ask(app, "POST", "/search", json={"query": "clay kiln", "k": 3})
        assert hits.status_code == 200 and hits.json()["hits"], hits.text
        assert str(tmp_path) not in hits.text
        (hit,) = hits.json()["hits"]
        digest_and_name = hit["document_id"]
        assert digest_and_name.endswith("/notes.txt") and len(digest_and_name.split("/")) == 2
        assert hit["metadata"]["source_path"] == digest_and_name == hit["source"]
        page = ask(app, "GET", f"/pages/{hit['page_id']}")
        assert str(tmp_path) not in page.text


# -- item 5: the key is never logged -------------------------------------------------------
def test_the_key_never_reaches_the_access_log_and_slow_headers_are_cut(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Store.open(db, PrecomputedVectors(DIM)) as store:
        store.add_pages([Page(vectors=[[1.0] + [0.0] * (DIM - 1)])])
    port = free_port()
    process = start(db, port, "--header-timeout", "1.5")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        # `latestore serve` cuts off a client that sends its headers a byte at a time.
        took, got = trickle(port, b"GET /health HTTP/1.1\r\nHost: x\r\n", b"X", 0.3, 20)
        assert took < 8 and got.startswith(b"HTTP/1.1 408"), (took, got)
        with httpx.Client(base_url=base) as browser:
            form = browser.get("/", headers={"accept": "text/html"})
            assert form.status_code == 401 and 'action="/login"' in form.text
            wrong = browser.post("/login", data={"key": "not-the-key-at-all"})
            assert wrong.status_code == 401 and "Wrong key" in wrong.text
            login = browser.post("/login", data={"key": KEY}, follow_redirects=False)
            assert login.status_code == 303 and login.headers["location"] == "/"
            assert "HttpOnly" in login.headers["set-cookie"]
            assert browser.get("/").status_code == 200  # the cookie is the key now
            assert browser.get("/info").status_code == 200
        # An old bookmark with the key in the URL: refused, and not logged in clear.
        old = httpx.get(f"{base}/?key={KEY}", headers={"accept": "text/html"})
        assert old.status_code == 401
        httpx.get(f"{base}/pages/1?api_key={KEY}&x=1")
    finally:
        process.terminate()
        log = process.communicate(timeout=60)[0].decode()
    assert "POST /login" in log and "key=REDACTED" in log  # the log was read, and works
    assert KEY not in log


# -- item 6: slow clients ------------------------------------------------------------------
@contextmanager
def timed_server(app: Any, header_timeout: float) -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", http=timed_protocol(header_timeout)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def trickle(
    port: int, head: bytes, step: bytes, every: float, at_most: float
) -> tuple[float, bytes]:
    """Send ``head``, then ``step`` every ``every`` seconds until the server closes the
    connection or ``at_most`` seconds pass; returns (seconds until closed, what came back)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(head)
        conn.settimeout(every)
        got = b""
        while time.monotonic() - started < at_most:
            try:
                chunk = conn.recv(4096)
                if not chunk:
                    return time.monotonic() - started, got
                got += chunk
            except TimeoutError:
                try:
                    conn.sendall(step)
                except OSError:
                    return time.monotonic() - started, got
            except OSError:
                return time.monotonic() - started, got
    return time.monotonic() - started, got


def test_headers_sent_slowly_are_cut_off(served: Served) -> None:
    with timed_server(served.app, header_timeout=1.5) as port:
        took, got = trickle(port, b"GET /health HTTP/1.1\r\nHost: x\r\n", b"X", 0.3, 20)
        assert took < 8 and got.startswith(b"HTTP/1.1 408"), (took, got)
        # A connection that sends nothing at all is closed the same way.
        took, got = trickle(port, b"", b"", 0.3, 20)
        assert took < 8 and b"408" in got
        # A normal client on the same server is not affected, nor a keep-alive reuse.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert client.get("/health").status_code == 200
            time.sleep(1.0)
            assert client.get("/health").status_code == 200


def test_a_body_sent_slowly_gets_408(served: Served) -> None:
    app = create_app(served.store, ServeSettings(store=served.url, body_timeout=1.5))
    with timed_server(app, header_timeout=30) as port:
        head = (
            b"POST /search HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 5000\r\n\r\n{"
        )
        took, got = trickle(port, head, b" ", 0.3, 20)
        assert took < 8 and got.startswith(b"HTTP/1.1 408"), (took, got)
        assert b"RequestTimeout" in got


async def test_a_streamed_body_over_the_limit_is_413_while_read(served: Served) -> None:
    """A chunked body (no Content-Length) is counted as the form parser reads it."""
    app = create_app(served.store, ServeSettings(store=served.url, max_body_bytes=10_000))

    async def chunks() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n\r\n'
        for _ in range(50):
            yield b"x" * 1000

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.post(
            "/upload", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
        )
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"] == "PayloadTooLarge"
    assert served.store.count() == N_PAGES
