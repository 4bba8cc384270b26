"""ASGI middleware in front of every route: API key, body size, admission.

They are plain ASGI callables (not Starlette's BaseHTTPMiddleware) so a refused request
is answered before any route, body parser or thread is involved.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KEY_COOKIE = "latestore_key"
KEY_HEADER = b"x-api-key"


async def send_json(
    send: Send,
    status: int,
    body: dict[str, Any],
    headers: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class ApiKeyGuard:
    """Every request must carry the key: ``X-API-Key``, ``Authorization: Bearer``, or the
    cookie that ``/?key=...`` sets for a browser (SameSite=Strict, HttpOnly), so the
    search page's images and fetches are authorised without putting the key in URLs."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = self._given(scope)
        if given is not None and hmac.compare_digest(given, self.key):
            await self.app(scope, receive, send)
            return
        from_query = self._from_query(scope)
        if (
            scope["path"] == "/"
            and from_query is not None
            and hmac.compare_digest(from_query, self.key)
        ):
            cookie = f"{KEY_COOKIE}={from_query.decode()}; HttpOnly; SameSite=Strict; Path=/"
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [(b"location", b"/"), (b"set-cookie", cookie.encode())],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await send_json(
            send,
            401,
            {
                "error": "Unauthorized",
                "message": "missing or wrong API key: send it as X-API-Key, as "
                "'Authorization: Bearer KEY', or open /?key=KEY in a browser",
                "status": 401,
            },
            [(b"www-authenticate", b"Bearer")],
        )

    @staticmethod
    def _given(scope: Scope) -> bytes | None:
        for name, value in scope.get("headers", []):
            if name == KEY_HEADER:
                return bytes(value)
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                return bytes(value[7:]).strip()
            if name == b"cookie":
                jar: SimpleCookie = SimpleCookie()
                try:
                    jar.load(value.decode("latin-1"))
                except Exception:  # a malformed cookie header is simply no key
                    continue
                if KEY_COOKIE in jar:
                    return jar[KEY_COOKIE].value.encode()
        return None

    @staticmethod
    def _from_query(scope: Scope) -> bytes | None:
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("key")
        return values[0].encode() if values else None


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, declared or streamed.

    A declared Content-Length over the limit is refused before reading; a body without
    one is read up to the limit and replayed, so memory never exceeds it.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_json(send, 400, _error(400, "BadRequest", "bad Content-Length"))
                    return
        if declared is not None and declared > self.limit:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        message = f"request body over the limit of {self.limit} bytes"
        await send_json(send, 413, _error(413, "PayloadTooLarge", message))


def _error(status: int, name: str, message: str) -> dict[str, Any]:
    return {"error": name, "message": message, "status": status}
