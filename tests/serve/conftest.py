"""Stores and clients for the serve tests: the real app, over the ASGI transport or a
loopback port, on SQLite and (with LATESTORE_TEST_PG_URL) PostgreSQL."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="latestore serve needs the serve extra")

import httpx
from PIL import Image

from latestore import Page, PrecomputedVectors
from latestore.serve import ServeSettings, create_app
from latestore.store import Store
from tests.store.helpers import clustered_pages

DIM = 32
N_PAGES = 300


@dataclass
class Served:
    store: Store
    url: str
    centres: np.ndarray
    app: Any


def ask(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request to ``app`` over the ASGI transport, from synchronous test code."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def png(width: int = 60, height: int = 80, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def build_vector_store(url: str, rng: np.random.Generator) -> tuple[Store, np.ndarray]:
    store = Store.open(url, PrecomputedVectors(DIM))
    pages, centres = clustered_pages(rng, N_PAGES, dim=DIM)
    # One page carries an image, so the image endpoints have something to serve.
    pages[0] = pages[0].model_copy(update={"image": png()})
    store.add_pages(pages)
    return store, centres


@pytest.fixture
def served(store_url: str, rng: np.random.Generator) -> Iterator[Served]:
    store, centres = build_vector_store(store_url, rng)
    settings = ServeSettings(store=store_url)
    try:
        yield Served(store, store_url, centres, create_app(store, settings))
    finally:
        store.close()


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=served.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def vector_page(rng: np.random.Generator, n: int = 5, dim: int = DIM, **fields: Any) -> Page:
    return Page(vectors=rng.standard_normal((n, dim)).astype(np.float32), **fields)
