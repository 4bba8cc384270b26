"""Hits read through SQLite's own cursor equal hits read through SQLAlchemy Core.

``hydrate`` takes the driver's cursor for one search's hits on SQLite (store/hits.py);
every field must come out as the Core path makes it, for every kind of page.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latestore import Page, PrecomputedVectors, Store
from latestore.store import hits
from tests.reliability.hostile_inputs import small_png


def _pages(rng: np.random.Generator, tmp_path: Path) -> list[Page]:
    image = tmp_path / "scan.png"
    image.write_bytes(b"not read by a search")
    vectors = lambda: rng.standard_normal((3, 8)).astype(np.float32)  # noqa: E731
    return [
        Page(text="plain", vectors=vectors()),
        Page(
            text="rich",
            external_id="doc-1#2",
            document_id="doc-1",
            page_number=2,
            source="reports/doc-1.pdf",
            metadata={"year": 2024, "tags": ["a", "b"], "nested": {"k": None, "x": 1.5}},
            vectors=vectors(),
        ),
        Page(text="ünïcode ✓", image_path=image, metadata={"lang": "de"}, vectors=vectors()),
        Page(image=small_png(), vectors=vectors()),
    ]


def test_sqlite_cursor_hits_equal_core_hits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    with Store.open(tmp_path / "s.db", PrecomputedVectors(dim=8, name="t")) as store:
        ids = store.add_pages(_pages(rng, tmp_path))
        store.delete([ids[3]])
        engine = store._db.engine
        rankings = [[(ids[1], 0.9), (ids[3], 0.8), (ids[0], 0.5)], [(ids[2], 0.7), (ids[1], 0.1)]]
        extras = [[{"signals": ("maxsim",)}] * 3, [{"maxsim_score": 0.7}, {"lexical_rank": 4}]]
        raw = hits.hydrate(engine, rankings, extras)
        monkeypatch.setattr(hits, "RAW_MAX_IDS", 0)  # every read through Core
        core = hits.hydrate(engine, rankings, extras)
    assert raw == core
    assert [[h.page_id for h in r] for r in raw] == [[ids[1], ids[0]], [ids[2], ids[1]]]
    assert [h.rank for h in raw[0]] == [1, 2]  # the deleted page is skipped, not ranked
    rich = raw[0][0]
    assert rich.metadata == {"year": 2024, "tags": ["a", "b"], "nested": {"k": None, "x": 1.5}}
    assert (rich.external_id, rich.page_number, rich.has_image) == ("doc-1#2", 2, False)
    assert raw[1][0].has_image is True and raw[1][0].text == "ünïcode ✓"
    assert raw[1][1].lexical_rank == 4 and raw[0][1].signals == ("maxsim",)
