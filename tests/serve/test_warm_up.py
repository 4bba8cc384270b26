"""`serve` is ready only with its encoder loaded and a search run (serve/command.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import latestore.cli.main  # noqa: F401 - first: serve.command is imported by the CLI
from latestore import Page
from latestore.encoders import PrecomputedVectors
from latestore.serve.command import warm_up
from latestore.store import Store


def test_warm_up_loads_the_recorded_encoder_and_searches(tmp_path: Path, minilm: Any) -> None:
    db = tmp_path / "w.db"
    with Store.open(db, minilm) as store:
        store.add_pages([Page(text="Bread rises because of yeast.")])
    with Store.open(db) as store:  # the recorded encoder loads on first use
        assert store._encoders.loaded is None
        assert warm_up(store) > 0
        assert store._encoders.loaded is not None
        assert store._db.derived.loaded


def test_warm_up_of_a_store_without_a_model(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    vectors = np.eye(4, dtype=np.float32)[:2]
    with Store.open(db, PrecomputedVectors(dim=4)) as store:
        store.add_pages([Page(text="x", vectors=vectors)])
        assert warm_up(store) > 0
