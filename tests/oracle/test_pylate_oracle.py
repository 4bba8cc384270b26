"""ColBERT families against PyLate 1.6.0, whose vectors come from its own virtualenv.

``make oracle`` builds ``.venv-oracle`` (PyLate pins transformers and
sentence-transformers apart from ours) and runs ``tools/pylate_oracle.py``, which saves
each checkpoint beside PyLate's vectors. Here latestore loads every saved checkpoint
through its registry and must reproduce them. Without those files the tests skip, unless
``LATESTORE_REQUIRE_PYLATE_ORACLE=1`` (set by ``.ci/run``), where their absence fails.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from latestore.encoders.base import PageContent
from latestore.encoders.registry import load_encoder
from tests.oracle.record import TOLERANCE, compare
from tests.oracle.texts import DOCUMENTS, QUERIES

ORACLE_DIR = Path(
    os.environ.get(
        "LATESTORE_PYLATE_ORACLE_DIR", Path(__file__).resolve().parents[2] / "build" / "pylate"
    )
)
CASES = (
    "colbert-bert-pylate",
    "colbert-hf_colbert",
    "colbert-modernbert-pylate",
    "colbert-xlmr-jina-settings-pylate",
)


@pytest.mark.parametrize("case", CASES)
def test_colbert_family_equals_pylate(case: str) -> None:
    folder = ORACLE_DIR / case
    if not (folder / "case.json").is_file():
        message = f"no PyLate reference at {folder}: run `make oracle`"
        if os.environ.get("LATESTORE_REQUIRE_PYLATE_ORACLE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    meta = json.loads((folder / "case.json").read_text())
    with np.load(folder / "reference.npz") as saved:
        theirs = (
            [saved[f"q{i}"] for i in range(meta["queries"])],
            [saved[f"d{i}"] for i in range(meta["documents"])],
        )
    # PyLate truncates every page to its document length: one window per page, as theirs
    encoder = load_encoder(folder / "model", device="cpu", windows=False)
    ours = (
        encoder.encode_queries(QUERIES),
        encoder.encode_pages([PageContent(text=text) for text in DOCUMENTS]),
    )
    result = compare(case, meta["reference"], ours, theirs)
    assert result.token_counts_equal, (
        [q.shape for q in ours[0] + ours[1]],
        [t.shape for t in theirs[0] + theirs[1]],
    )
    assert result.max_abs_diff <= TOLERANCE, result
