"""A Content-Security-Policy on every HTML page the server sends: the browser loads
scripts, styles, images, fonts and connections from this server only.

The pages reference nothing elsewhere; the policy makes that a guarantee for code we do
not write too (ReDoc's bundle links a logo on a CDN, which the browser then never asks
for), so the search page and /docs work, and leak nothing, on a machine with no internet.
"""

from __future__ import annotations

from latestore.serve.guards import ASGIApp, Message, Receive, Scope, Send

_SOURCES = (
    "default-src 'self'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'self'; base-uri 'self'; "
    "form-action 'self'"
)
# The search page has no inline code; Swagger UI and ReDoc start from an inline script.
PAGE_POLICY = f"{_SOURCES}; script-src 'self'; style-src 'self'"
DOCS_POLICY = f"{_SOURCES}; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'"


class PagePolicy:
    """Adds the policy header to ``text/html`` responses; other responses pass as they are."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = (PAGE_POLICY if scope["path"] == "/" else DOCS_POLICY).encode()

        async def with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                kind = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if kind.startswith(b"text/html"):
                    headers.append((b"content-security-policy", policy))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_policy)
