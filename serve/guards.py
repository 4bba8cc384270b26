"""ASGI middleware in front of every route: API key, body size, admission.

They are plain ASGI callables (not Starlette's BaseHTTPMiddleware) so a refused request
is answered before any route, body parser or thread is involved.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from starlette.exceptions import HTTPException

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


LOGIN_PATH = "/login"
LOGIN_FORM_LIMIT = 4096
LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>latestore: key needed</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 28rem; margin: 4rem auto">
<h1>latestore</h1><p>%s</p>
<form method="post" action="/login">
<label>API key <input type="password" name="key" autocomplete="current-password"
 autofocus required></label> <button type="submit">Open</button>
</form></body></html>
"""


class ApiKeyGuard:
    """Every request must carry the key: ``X-API-Key``, ``Authorization: Bearer``, or the
    cookie that a browser gets by posting the key to ``/login`` (SameSite=Strict,
    HttpOnly), so the search page's images and fetches are authorised.

    The key never travels in a URL: a URL is written to access logs, proxy logs and
    browser history. A browser asking for ``/`` without the key gets the login form.
    """

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
        if scope["path"] == LOGIN_PATH and scope["method"] == "POST":
            await self._login(scope, receive, send)
            return
        if scope["path"] == "/" and _wants_html(scope):
            await _send_login_page(send, 401, "This server needs its API key.")
            return
        await send_json(
            send,
            401,
            {
                "error": "Unauthorized",
                "message": "missing or wrong API key: send it as X-API-Key, as "
                "'Authorization: Bearer KEY', or log in at / in a browser",
                "status": 401,
            },
            [(b"www-authenticate", b"Bearer")],
        )

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A form post of the key: 303 to / with the cookie, or the form again (401)."""
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > LOGIN_FORM_LIMIT:
                await send_json(send, 413, _error(413, "PayloadTooLarge", "login form too large"))
                return
            if not message.get("more_body", False):
                break
        values = parse_qs(body.decode("latin-1")).get("key")
        offered = values[0].encode("latin-1") if values else b""
        if not hmac.compare_digest(offered, self.key):
            await _send_login_page(send, 401, "Wrong key; try again.")
            return
        cookie = f"{KEY_COOKIE}={self.key.decode()}; HttpOnly; SameSite=Strict; Path=/"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", b"/"),
                    (b"set-cookie", cookie.encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

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


def _wants_html(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"accept":
            return b"text/html" in value
    return False


async def _send_login_page(send: Send, status: int, message: str) -> None:
    payload = (LOGIN_PAGE % message).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RedactKeys(logging.Filter):
    """Access-log filter: any ``key=`` query value becomes ``key=REDACTED``.

    The key is not accepted in URLs, but a user following an old ``/?key=KEY`` link
    still sends it; uvicorn logs the path with its query before anyone could refuse."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _KEY_IN_QUERY.sub(r"\1REDACTED", a) if isinstance(a, str) else a
                for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _KEY_IN_QUERY.sub(r"\1REDACTED", record.msg)
        return True


_KEY_IN_QUERY = re.compile(r"([?&;](?:key|api_key|apikey|token)=)[^&;#\s\"]*", re.IGNORECASE)


# The rest of the body is never read: the connection cannot carry another request.
CLOSE = {"connection": "close"}


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit (answered 413)."""


class BodyTooSlow(HTTPException):
    """Raised from ``receive`` when a body has not arrived in time (answered 408)."""


class BodyLimit:
    """Bound request bodies: over ``limit`` bytes is 413, declared or streamed; a body
    not complete ``timeout`` seconds after the app first asks for it is 408.

    The body is not buffered here: the app reads it as it comes (a multipart upload is
    spooled to disk by the form parser), and the count is checked on every chunk, so
    memory per request stays near what the route itself keeps. The errors are
    HTTPExceptions so that FastAPI's body parsing passes them on as they are.
    """

    def __init__(self, app: ASGIApp, limit: int, timeout: float | None = None) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

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
        size = 0
        deadline: float | None = None
        started = False
        body_done = False

        async def limited() -> Message:
            nonlocal size, deadline, body_done
            loop = asyncio.get_running_loop()
            if self.timeout is None or body_done:
                # Past the body, receive() waits for a disconnect while a response
                # streams: no deadline there.
                message = await receive()
            else:
                if deadline is None:
                    deadline = loop.time() + self.timeout
                try:
                    message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    raise BodyTooSlow(
                        408, f"request body not received within {self.timeout:g} s", CLOSE
                    ) from None
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if size > self.limit:
                    raise BodyTooLarge(413, self._message(), CLOSE)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, watched)
            if size >= TRIM_AFTER_BYTES:
                release_freed_memory()
        except (BodyTooLarge, BodyTooSlow) as exc:
            # Raised outside a route (a middleware reading the body): answered here.
            if started:
                raise
            name = "PayloadTooLarge" if exc.status_code == 413 else "RequestTimeout"
            error = _error(exc.status_code, name, exc.detail)
            await send_json(send, exc.status_code, error, [(b"connection", b"close")])

    def _message(self) -> str:
        return f"request body over the limit of {self.limit} bytes"

    async def _refuse(self, send: Send) -> None:
        await send_json(send, 413, _error(413, "PayloadTooLarge", self._message()))


# A request body this large leaves many freed blocks behind (its JSON parse, its
# vectors); glibc keeps them in its per-thread arenas unless asked to give them back.
TRIM_AFTER_BYTES = 1 << 20


def release_freed_memory() -> None:
    """Return the C heap's free pages to the system (glibc ``malloc_trim``); a no-op
    elsewhere. Without it a burst of large requests left the server gigabytes larger."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def _error(status: int, name: str, message: str) -> dict[str, Any]:
    return {"error": name, "message": message, "status": status}
