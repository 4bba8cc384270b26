"""ColGemma3 (Gemma 3) against colpali-engine 0.3.18, on a checkpoint saved by its class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latestore.encoders.base import PageContent
from latestore.encoders.registry import load_encoder
from latestore.encoders.vision.colgemma3 import ColGemma3Encoder
from tests.oracle import inputs
from tests.oracle.record import TOLERANCE, compare
from tests.oracle.reference import ENGINE_VERSION
from tests.oracle.reference_gemma import EngineColGemma3, build_engine_colgemma3


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_engine_colgemma3(tmp_path_factory.mktemp("colgemma3") / "engine")


def test_engine_colgemma3_equals_reference(engine_dir: Path) -> None:
    images = inputs.pages()
    reference = EngineColGemma3(engine_dir)
    theirs = (reference.queries(inputs.QUERIES), reference.pages(images))
    encoder = load_encoder(engine_dir, device="cpu")
    assert isinstance(encoder, ColGemma3Encoder)
    ours = (
        encoder.encode_queries(inputs.QUERIES),
        encoder.encode_pages([PageContent(image=image) for image in images]),
    )
    result = compare("colgemma3", ENGINE_VERSION, ours, theirs)
    assert result.token_counts_equal, [v.shape for v in ours[0] + ours[1]]
    assert result.max_abs_diff <= TOLERANCE, result
    assert encoder.dim == 128
    # Different pages give different vectors: the image reaches the output.
    assert not np.allclose(ours[1][0], ours[1][1], atol=1e-3)


def test_colgemma3_vectors_do_not_depend_on_the_batch(engine_dir: Path) -> None:
    batched = load_encoder(engine_dir, device="cpu", batch_size=len(inputs.QUERIES))
    alone = load_encoder(engine_dir, device="cpu", batch_size=1)
    pairs: list[tuple[Any, Any]] = list(
        zip(
            batched.encode_queries(inputs.QUERIES),
            alone.encode_queries(inputs.QUERIES),
            strict=True,
        )
    )
    for a, b in pairs:
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=TOLERANCE)
