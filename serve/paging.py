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
from collections.abc import Sequence
from typing import Any

import numpy as np

from latestore.errors import InvalidInputError


class BadCursorError(InvalidInputError):
    """A cursor that is malformed or belongs to another search."""


def search_digest(queries: Sequence[Any], fields: dict[str, Any]) -> str:
    """The identity of a search: its queries and the ``fields`` that shape its ranking.

    Vector queries are hashed as float32 bytes, not as JSON text: a cursor is made for
    nearly every answer, and writing thousands of floats out again would cost more than
    the rest of the request's handling.
    """
    digest = hashlib.blake2b(digest_size=12)
    digest.update(json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str).encode())
    for query in queries:
        if isinstance(query, str):
            digest.update(b"t%d:" % len(query.encode()) + query.encode())
        else:
            try:
                raw = np.asarray(query, dtype=np.float32)
            except ValueError:  # ragged rows: the search refuses them, whatever the digest
                raw = np.zeros(0, dtype=np.float32)
            digest.update(b"v%s:" % str(raw.shape).encode() + raw.tobytes())
    return digest.hexdigest()


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
