"""VLLMEncoder against a real HTTP server on 127.0.0.1 replaying vLLM's /pooling shapes.

The server speaks vLLM's response format (``data[i].data`` as nested float lists, or the
flattened float32/float16/bfloat16 bytes in base64 when asked for ``encoding_format:
base64``) and can be scripted to answer with error statuses, malformed bodies or a slow
reply.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from PIL import Image

from latestore.encoders.base import PageContent
from latestore.encoders.remote import PROMPT_PRESETS, PromptContract, VLLMEncoder
from latestore.errors import EncoderError

DIM = 8


@dataclass
class Scripted:
    """One canned answer: status, JSON body (None = compute the normal reply), delay."""

    status: int = 200
    body: Any = None
    delay: float = 0.0


@dataclass
class FakeVLLM:
    requests: list[dict[str, Any]] = field(default_factory=list)
    script: list[Scripted] = field(default_factory=list)
    dim: int = DIM
    url: str = ""


def _vectors(key: str, n_tokens: int, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")
    # Unnormalised on purpose: the client must L2-normalise.
    return np.random.default_rng(seed).normal(size=(n_tokens, dim)).astype(np.float32) * 3


def _encode(array: np.ndarray, request: dict[str, Any]) -> Any:
    if request.get("encoding_format") != "base64":
        return array.tolist()
    dtype = request.get("embed_dtype", "float32")
    if dtype == "float32":
        blob = array.astype("<f4").tobytes()
    elif dtype == "float16":
        blob = array.astype("<f2").tobytes()
    else:  # bfloat16: truncate float32 to its high 16 bits, as torch's view would
        blob = (array.astype("<f4").view("<u4") >> 16).astype("<u2").tobytes()
    return base64.b64encode(blob).decode()


def _normal_reply(request: dict[str, Any], dim: int) -> dict[str, Any]:
    if "messages" in request:
        parts = request["messages"][0]["content"]
        keys = ["image:" + json.dumps(parts)[-64:]]
        lengths = [20]
    else:
        keys = list(request["input"])
        lengths = [len(k.split()) + 2 for k in keys]
    data = [
        {"index": i, "object": "pooling", "data": _encode(_vectors(k, n, dim), request)}
        for i, (k, n) in enumerate(zip(keys, lengths, strict=True))
    ]
    # vLLM may answer out of order within a batch; 'index' is authoritative.
    data.reverse()
    return {
        "id": "pool-1",
        "object": "list",
        "created": int(time.time()),
        "model": request["model"],
        "data": data,
        "usage": {"prompt_tokens": sum(lengths), "total_tokens": sum(lengths)},
    }


@pytest.fixture
def server() -> Iterator[FakeVLLM]:
    state = FakeVLLM()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append({"path": self.path, **body})
            step = state.script.pop(0) if state.script else Scripted()
            if step.delay:
                time.sleep(step.delay)
            reply = step.body if step.body is not None else _normal_reply(body, state.dim)
            blob = json.dumps(reply).encode()
            try:
                self.send_response(step.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(blob)))
                self.end_headers()
                self.wfile.write(blob)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def _encoder(server: FakeVLLM, **options: Any) -> VLLMEncoder:
    options.setdefault("dim", DIM)
    options.setdefault("backoff", 0.01)
    return VLLMEncoder(server.url, "tiny-colqwen", **options)


def _unit(rows: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-3))


def test_float_response_text_queries_and_pages(server: FakeVLLM) -> None:
    prompts = PROMPT_PRESETS["colqwen2"]
    with _encoder(server, prompts=prompts, batch_size=2) as enc:
        queries = enc.encode_queries(["one", "two words", "three more words"])
        pages = enc.encode_pages([PageContent(text="page text here")])
    assert [q.shape for q in queries] == [(4, DIM), (5, DIM), (6, DIM)]
    assert all(q.dtype == np.float32 and _unit(q) for q in queries)
    assert pages[0].shape == (5, DIM)
    first = server.requests[0]
    assert first["path"] == "/v1/pooling" and first["task"] == "token_embed"
    assert first["input"] == [prompts.query("one"), prompts.query("two words")]
    # transformers' ColQwen2Processor ends a query with a newline (tests/oracle checks ids).
    assert first["input"][0].startswith("Query: one") and first["input"][0].endswith(
        "<|endoftext|>\n"
    )
    assert len(server.requests) == 3  # batches of 2 + 1, then the page
    # Vectors line up with inputs despite the server's reversed order.
    again = VLLMEncoder(server.url, "m", dim=DIM, prompts=prompts).encode_queries(["two words"])
    np.testing.assert_allclose(again[0], queries[1])


@pytest.mark.parametrize(
    ("dtype", "atol"), [("float32", 1e-6), ("float16", 2e-3), ("bfloat16", 2e-2)]
)
def test_base64_responses_decode_like_float(server: FakeVLLM, dtype: str, atol: float) -> None:
    reference = _encoder(server).encode_queries(["alpha beta"])[0]
    enc = _encoder(server, encoding_format="base64", embed_dtype=dtype)
    decoded = enc.encode_queries(["alpha beta"])[0]
    assert server.requests[-1]["embed_dtype"] == dtype
    assert server.requests[-1]["endianness"] == "little"
    assert decoded.shape == reference.shape
    np.testing.assert_allclose(decoded, reference, atol=atol)
    assert _unit(decoded)
    assert enc.fingerprint != _encoder(server).fingerprint or dtype == "float32"


def test_image_page_goes_as_chat_messages(server: FakeVLLM) -> None:
    enc = _encoder(server, prompts=PROMPT_PRESETS["colpali"])
    image = Image.new("RGB", (32, 24), (200, 30, 30))
    out = enc.encode_pages([PageContent(image=image), PageContent(text="plain")])
    assert out[0].shape == (20, DIM) and out[1].shape == (3, DIM)
    chat = next(r for r in server.requests if "messages" in r)
    content = chat["messages"][0]["content"]
    assert content[0]["type"] == "image_url"
    assert content[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert content[1] == {"type": "text", "text": "Describe the image."}
    assert chat["task"] == "token_embed"


def test_dim_is_probed_when_not_given(server: FakeVLLM) -> None:
    server.dim = 5
    enc = VLLMEncoder(server.url, "m")
    assert enc.dim == 5
    assert enc.encode_queries(["x"])[0].shape[1] == 5


def test_retries_5xx_then_succeeds(server: FakeVLLM) -> None:
    server.script = [
        Scripted(500, {"error": {"message": "engine busy"}}),
        Scripted(503, {"message": "loading"}),
    ]
    out = _encoder(server, max_retries=2).encode_queries(["hello"])
    assert out[0].shape == (3, DIM)
    assert len(server.requests) == 3


def test_5xx_exhausts_retries(server: FakeVLLM) -> None:
    server.script = [Scripted(500, {"error": {"message": "engine dead"}})] * 3
    with pytest.raises(EncoderError, match=r"after 3 attempts.*engine dead"):
        _encoder(server, max_retries=2).encode_queries(["hello"])


def test_4xx_is_a_clear_error_without_retry(server: FakeVLLM) -> None:
    message = "The model does not support task token_embed"
    server.script = [Scripted(400, {"error": {"message": message, "type": "BadRequestError"}})]
    with pytest.raises(EncoderError, match=r"HTTP 400.*does not support task token_embed"):
        _encoder(server).encode_queries(["hello"])
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ({"data": []}, "0 results for 1"),
        ({"object": "error"}, "no results"),
        ({"data": [{"index": 0, "data": [0.1] * 3}]}, "shape"),
        ({"data": [{"index": 0, "data": [[0.1] * (DIM + 1)]}]}, f"dim {DIM + 1}, expected {DIM}"),
        ({"data": [{"index": 0, "data": [[0.1] * DIM, [0.1]]}]}, "ragged"),
        ({"data": [{"index": 0, "data": "not base64!!"}]}, "base64"),
        ({"data": [{"index": 0, "data": base64.b64encode(b"\0" * 12).decode()}]}, "whole number"),
        ({"data": [{"index": 0, "data": [[float("nan")] * DIM]}]}, "NaN"),
        ({"data": [{"index": 0}]}, "no token vectors"),
    ],
)
def test_malformed_responses_are_refused(server: FakeVLLM, body: Any, pattern: str) -> None:
    server.script = [Scripted(200, body)]
    with pytest.raises(EncoderError, match=pattern):
        _encoder(server).encode_queries(["hello"])


def test_slow_reply_times_out(server: FakeVLLM) -> None:
    server.script = [Scripted(delay=1.0), Scripted(delay=1.0)]
    enc = _encoder(server, timeout=0.2, max_retries=1)
    started = time.monotonic()
    with pytest.raises(EncoderError, match="timed out"):
        enc.encode_queries(["hello"])
    assert time.monotonic() - started < 0.9
    assert len(server.requests) == 2


def test_connection_refused_is_retried_then_reported() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(EncoderError, match="connection failed"):
        VLLMEncoder(
            f"http://127.0.0.1:{port}", "m", dim=DIM, max_retries=1, backoff=0.01
        ).encode_queries(["x"])


def test_fingerprint_tracks_model_dim_and_prompts(server: FakeVLLM) -> None:
    base = _encoder(server).fingerprint
    assert _encoder(server).fingerprint == base
    assert _encoder(server, prompts=PromptContract(query_prefix="Q: ")).fingerprint != base
    assert VLLMEncoder(server.url, "other", dim=DIM).fingerprint != base
    server.dim = 4
    assert VLLMEncoder(server.url, "tiny-colqwen", dim=4).fingerprint != base


def test_empty_page_is_refused(server: FakeVLLM) -> None:
    with pytest.raises(EncoderError, match="neither text nor an image"):
        _encoder(server).encode_pages([PageContent()])
