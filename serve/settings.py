"""What `latestore serve` is allowed to do: bind address, key, limits, CORS."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from latestore.errors import InvalidInputError

API_KEY_ENV = "LATESTORE_API_KEY"
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})
_KEY_FORM = re.compile(r"[A-Za-z0-9._~+/=-]{8,}")


class InsecureBindError(InvalidInputError):
    """Listening beyond loopback without an API key."""


@dataclass(frozen=True)
class ServeSettings:
    """Server settings.

    ``search_workers`` threads run searches (and other reads) in parallel; at most
    ``queue_size`` more requests wait for one, and beyond that the server answers 503.
    Writes (adding, uploading, deleting) have their own ``write_workers`` threads and
    queue, so a long ingest never takes a search thread.

    A connection must send a request's headers within ``header_timeout`` seconds and its
    body within ``body_timeout`` seconds, or it is closed (408): a slow or stalled
    client cannot hold a connection and its memory for ever.
    """

    store: str
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    search_workers: int = 8
    write_workers: int = 2
    queue_size: int = 64
    max_body_bytes: int = 32 << 20
    max_queries: int = 64
    cors_origins: tuple[str, ...] = ()
    upload_dir: Path | None = None
    graceful_seconds: float = 30.0
    snippet_chars: int = 400
    header_timeout: float = 10.0
    body_timeout: float = 120.0
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("search_workers", "write_workers", "max_body_bytes", "max_queries"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("header_timeout", "body_timeout"):
            if not getattr(self, name) > 0:
                raise InvalidInputError(f"{name} must be positive, got {getattr(self, name)}")
        if self.queue_size < 0:
            raise InvalidInputError(f"queue_size must be 0 or more, got {self.queue_size}")
        if self.api_key is not None and not _KEY_FORM.fullmatch(self.api_key):
            # It travels in a header and a cookie: no spaces, quotes, commas or semicolons.
            raise InvalidInputError(
                "an API key must be at least 8 characters of A-Z a-z 0-9 . _ ~ + / = -"
            )
        if not is_loopback(self.host) and not self.api_key:
            raise InsecureBindError(
                f"listening on {self.host} (beyond this machine) needs an API key: "
                f"pass --api-key or set {API_KEY_ENV}"
            )

    @staticmethod
    def key_from_env() -> str | None:
        return os.environ.get(API_KEY_ENV) or None


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere
