"""Reading ``POST /pages`` bodies without holding every number as a Python float.

A JSON body of token vectors parsed the usual way (``json.loads``, then the pydantic
model) holds each number as a Python float twice over: 32 bytes a number, for about 9
bytes of JSON, so a request peaked at about 8 times its body. Here the parse converts
each page's ``vectors`` rows into one float64 array the moment that page's object is
complete (``object_hook``), so only one page's floats exist as Python objects at a
time; the arrays become float32 as the model is built. float64 holds every parsed
number exactly, which matters for the one case the hook cannot tell apart from a page:
a metadata object that also has a ``vectors`` key of rows of numbers gets its lists back
unchanged after the parse.

Bodies with ``vectors`` as base64 bytes (``EncodedVectors`` in schemas.py) are smaller
still and never hold a float at all.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import numpy.typing as npt
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

# The fields of a page object (schemas.PageIn): a dict with any other key is not a page.
PAGE_FIELDS = frozenset(
    {
        "text",
        "image_base64",
        "vectors",
        "external_id",
        "document_id",
        "page_number",
        "source",
        "metadata",
    }
)


class ParsedRows:
    """A ``vectors`` value parsed into an array, until it is known to be a page's."""

    __slots__ = ("array",)

    def __init__(self, array: npt.NDArray[np.float64]) -> None:
        self.array = array


def loads_pages(body: bytes | str) -> Any:
    """``json.loads(body)``, with each page's ``vectors`` as a float32 array.

    Raises json.JSONDecodeError on malformed JSON, like ``json.loads``.
    """
    seen: list[tuple[dict[str, Any], ParsedRows]] = []

    def hook(obj: dict[str, Any]) -> dict[str, Any]:
        rows = obj.get("vectors")
        if type(rows) is not list or not rows or not obj.keys() <= PAGE_FIELDS:
            return obj
        try:
            # Only rows of JSON floats: ints, bools or strings would not come back
            # as they were if this turns out not to be a page.
            if set(map(type, itertools.chain.from_iterable(rows))) != {float}:
                return obj
            array = np.array(rows, dtype=np.float64)
        except (TypeError, ValueError):  # not rows, or ragged: left to the model's check
            return obj
        parsed = ParsedRows(array)
        obj["vectors"] = parsed
        seen.append((obj, parsed))
        return obj

    data = json.loads(body, object_hook=hook)
    pages = data.get("pages") if isinstance(data, dict) else None
    taken: set[int] = set()
    if isinstance(pages, list):
        for page in pages:
            if isinstance(page, dict) and isinstance(page.get("vectors"), ParsedRows):
                parsed = page["vectors"]
                page["vectors"] = parsed.array.astype(np.float32)
                parsed.array = np.empty((0, 0))  # the float64 copy goes now, page by page
                taken.add(id(page))
    for obj, parsed in seen:
        if id(obj) not in taken:  # not a page: the lists as they were sent
            obj["vectors"] = parsed.array.tolist()
    return data


class PagesRequest(Request):
    """A request whose JSON body is read by :func:`loads_pages`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_pages(await self.body())
        return self._json


class PagesRoute(APIRoute):
    """The route class of ``POST /pages``: FastAPI reads its body as a PagesRequest
    (validation, errors and the OpenAPI schema stay FastAPI's)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def read_vectors_as_arrays(request: Request) -> Response:
            return await handler(PagesRequest(request.scope, request.receive))

        return read_vectors_as_arrays
