"""Paging a search: by ``offset``, or by the opaque ``cursor`` a response hands out.

A cursor is the next offset bound to the search it continues (a digest of the query,
mode, phrase, filter, k and exhaustive flag), so a cursor given with another search is
an error rather than a page of something else. It holds no state on the server.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from latestore.errors import InvalidInputError


class BadCursorError(InvalidInputError):
    """A cursor that is malformed or belongs to another search."""


def search_digest(request: dict[str, Any]) -> str:
    """The identity of a search, without its paging and explanation fields."""
    kept = {k: v for k, v in request.items() if k not in ("offset", "cursor", "explain")}
    canonical = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(canonical.encode(), digest_size=12).hexdigest()


def make_cursor(offset: int, digest: str) -> str:
    raw = json.dumps({"o": offset, "s": digest}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_cursor(cursor: str, digest: str) -> int:
    """The offset a cursor continues at; BadCursorError for another search's cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        fields = json.loads(raw)
        offset, owner = fields["o"], fields["s"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise BadCursorError(f"the cursor is not one this server made: {cursor!r:.80}") from exc
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise BadCursorError(f"the cursor's offset is invalid: {offset!r:.40}")
    if owner != digest:
        raise BadCursorError(
            "the cursor belongs to another search: send it with the same query, mode, "
            "phrase, filter, k and exhaustive flag"
        )
    return offset
