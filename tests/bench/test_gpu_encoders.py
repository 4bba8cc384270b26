"""bench/gpu_encoders.py end to end on the CPU with toy configs (its --tiny smoke mode).

The GPU run measures speed; here the same code path builds every model with
colpali-engine's classes, saves latestore's checkpoint, encodes with both and checks
what a GPU run cannot be trusted to check by eye: equal token counts and, on one
checkpoint in float32, equal vectors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import gpu_encoders
from bench.gpu_encoder_models import MODELS
from tests.oracle.reference import import_engine


def test_synthetic_pages_are_letter_pages_with_content() -> None:
    pages = gpu_encoders.synthetic_pages(2)
    assert [p.size for p in pages] == [(1275, 1650)] * 2
    pixels = np.asarray(pages[0].convert("L"), dtype=np.float32)
    dark = float((pixels < 128).mean())
    assert 0.01 < dark < 0.5, dark  # text and figures, not a blank or a black page
    assert not np.array_equal(np.asarray(pages[0]), np.asarray(pages[1]))


@pytest.mark.slow
def test_tiny_run_measures_both_sides_of_every_model(tmp_path: Path) -> None:
    import_engine()  # skips where colpali-engine is not installed
    result = gpu_encoders.main(
        ["--tiny", "--device", "cpu", "--pages", "3", "--batch-sizes", "2", "--out", str(tmp_path)]
    )
    assert json.loads((tmp_path / "gpu_encoders.json").read_text()) == json.loads(
        json.dumps(result, default=str)
    )
    assert set(result["models"]) == set(MODELS)
    dims = {"colqwen2-2b": 128, "colqwen3.5-0.8b": 320, "colpali-3b": 128}
    for name, row in result["models"].items():
        assert "error" not in row, row.get("error")
        for side in ("latestore", "colpali_engine"):
            figures = row[side]["2"]
            assert figures["pages_per_s"] > 0 and figures["dim"] == dims[name]
            assert figures["tokens_per_page"] > 0
        # One checkpoint for both sides, for every model: the same vectors in float32.
        assert row["agreement"]["2"]["token_counts_equal"], name
        assert row["agreement"]["2"]["max_abs_diff"] <= 1e-5, name
