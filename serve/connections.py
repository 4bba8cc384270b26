"""How uvicorn runs the app: connections that must send their headers in time, and an
access log that never holds the API key.

uvicorn times out idle keep-alive connections only: a client that opens a connection
and sends its headers a byte at a time (or never) holds it, and its socket, for as long
as it likes. The request body is bounded by ``guards.BodyLimit`` once the app reads it.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import h11
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 36\r\n"
    b"connection: close\r\n\r\nrequest headers not received in time"
)


class HeaderTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol, closing a connection (408) whose request headers are not
    complete ``header_timeout`` seconds after it opened or after its last response."""

    header_timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers of a request are in
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()  # a keep-alive connection: the next request's headers are due

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            # h11 cannot answer a request it has not parsed: the reply is written raw.
            self.transport.write(TIMEOUT_RESPONSE)
            self.transport.close()


def timed_protocol(header_timeout: float) -> type[HeaderTimeoutH11]:
    """The protocol class to give uvicorn as ``http=``."""
    return type("HeaderTimeoutH11", (HeaderTimeoutH11,), {"header_timeout": header_timeout})


def redacting_log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with ``guards.RedactKeys`` on the access log."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_keys"] = {"()": "latestore.serve.guards.RedactKeys"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact_keys")
    return config
