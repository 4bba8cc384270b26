"""Process bodies for the upsert race tests (started with ``spawn``).

Each writer stops inside ``add_pages`` once its pages are prepared, before the write
transaction begins, and goes on only when the test says so: the races the tests need
then happen every time instead of when the scheduler allows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from latestore import Page, PrecomputedVectors, Store
from tests.reliability.corpus import DIM

PAGES = 40


def pages(tag: str, seed: int) -> list[Page]:
    """The same ``PAGES`` external ids every time; ``tag`` and ``seed`` vary the content."""
    rng = np.random.default_rng(seed)
    return [
        Page(
            vectors=rng.standard_normal((4, DIM)).astype(np.float32),
            external_id=f"race-{j}",
            metadata={"writer": tag, "j": j},
        )
        for j in range(PAGES)
    ]


def upsert(
    url: str,
    tag: str,
    seed: int,
    out: str,
    barrier: Any = None,
    arrived: Any = None,
    go: Any = None,
) -> None:
    """Add ``pages(tag, seed)``. Once prepared (before the write), meet the other writers
    at ``barrier``, set ``arrived`` and wait for ``go``: whichever are given."""
    waited = False

    def pause(done: int, total: int) -> None:
        nonlocal waited
        if waited:
            return
        waited = True
        if barrier is not None:
            barrier.wait(60)
        if arrived is not None:
            arrived.set()
        if go is not None:
            assert go.wait(60), "the test never said go"

    with Store.open(url, PrecomputedVectors(dim=DIM)) as store:
        ids = store.add_pages(pages(tag, seed), on_progress=pause)
    Path(out).write_text(json.dumps(ids))


def create(url: str, barrier: Any, out: str) -> None:
    """Open (so create) the store at ``url`` at the same moment as the other processes."""
    barrier.wait(120)
    with Store.open(url, PrecomputedVectors(dim=DIM)) as store:
        store.add_pages([Page(vectors=np.eye(2, DIM, dtype=np.float32), external_id=out)])
        Path(out).write_text(store.store_uuid)


def connect(url: str, barrier: Any, out: str) -> None:
    """Connect to the (new) SQLite file at ``url`` at the same moment as the others."""
    from sqlalchemy import text

    from latestore.store.sql import make_engine

    engine = make_engine(url)
    barrier.wait(120)
    with engine.connect() as conn:
        mode = conn.execute(text("PRAGMA journal_mode")).scalar_one()
    engine.dispose()
    Path(out).write_text(str(mode))
