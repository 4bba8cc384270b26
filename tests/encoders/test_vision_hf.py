"""transformers-native ColVision families from tiny checkpoints in their real layouts."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from latestore.encoders.base import PageContent
from latestore.encoders.registry import load_encoder
from latestore.encoders.vision.transformers_native import ColVisionEncoder
from latestore.errors import EncoderError
from tests.encoders.vision_checkpoints import (
    build_colmodernvbert,
    build_colpali,
    build_colqwen2,
    rename_weights,
    weight_names,
)

BUILDERS: dict[str, Callable[[Path], Path]] = {
    "colmodernvbert": build_colmodernvbert,
    "colpali": build_colpali,
    "colqwen2": build_colqwen2,
}


def page_image(width: int = 60, height: int = 80, seed: int = 0) -> Image.Image:
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng(seed)
    for _ in range(6):
        x, y = (int(v) for v in rng.integers(0, min(width, height) - 10, size=2))
        draw.rectangle([x, y, x + 8, y + 4], fill=(0, 0, int(rng.integers(0, 255))))
    return image


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    family = str(request.param)
    return BUILDERS[family](tmp_path_factory.mktemp(family) / family)


def _unit_rows(vectors: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4))


def test_loads_by_directory_and_encodes(checkpoint: Path) -> None:
    encoder = load_encoder(checkpoint)
    assert isinstance(encoder, ColVisionEncoder)
    assert encoder.dim == 16 and encoder.device == "cpu"
    pages = encoder.encode_pages(
        [PageContent(image=page_image()), PageContent(image=page_image(90, 40, 1))]
    )
    queries = encoder.encode_queries(["what is the revenue?", "x"])
    for vectors in [*pages, *queries]:
        assert vectors.dtype == np.float32 and vectors.ndim == 2 and vectors.shape[1] == 16
        assert vectors.shape[0] > 0 and _unit_rows(vectors)
    # Query augmentation makes even a one-character query many tokens long.
    assert queries[1].shape[0] >= 10
    again = load_encoder(checkpoint)
    np.testing.assert_allclose(
        again.encode_pages([PageContent(image=page_image())])[0], pages[0], atol=1e-5
    )
    np.testing.assert_allclose(again.encode_queries(["x"])[0], queries[1], atol=1e-5)
    assert again.fingerprint == encoder.fingerprint
    # Batched and single encodings agree (padding is dropped correctly).
    single = encoder.encode_queries(["what is the revenue?"])[0]
    np.testing.assert_allclose(single, queries[0], atol=1e-4)


def test_only_the_hf_colqwen2_has_a_second_encoding_revision(checkpoint: Path) -> None:
    """Its pages gained M-RoPE grid positions: stores from before re-encode (see
    tests/store/test_encoder_revisions.py); the other families keep their fingerprints."""
    encoder = load_encoder(checkpoint)
    if encoder.family == "colqwen2":
        assert len(encoder.supersedes) == 1 and "M-RoPE" in encoder.revision_note
    else:
        assert encoder.supersedes == () and encoder.revision_note == ""


def test_text_only_page_is_refused(checkpoint: Path) -> None:
    encoder = load_encoder(checkpoint)
    with pytest.raises(EncoderError, match="page 0 has none"):
        encoder.encode_pages([PageContent(text="just text")])


def test_checkpoint_weights_all_have_a_home(checkpoint: Path) -> None:
    names = weight_names(checkpoint)
    assert any(n.startswith("embedding_proj_layer.") for n in names)
    assert any(n.startswith("vlm.") for n in names)


@pytest.mark.parametrize(
    "rename",
    [
        pytest.param(
            lambda k: k.replace("embedding_proj_layer", "custom_text_proj"), id="projection"
        ),
        pytest.param(lambda k: k.replace(".layers.0.", ".layer.0."), id="backbone"),
    ],
)
def test_misnamed_weights_fail_loudly(
    checkpoint: Path, tmp_path: Path, rename: Callable[[str], str]
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    rename_weights(broken, rename)
    with pytest.raises(EncoderError, match="randomly initialised"):
        load_encoder(broken)


def test_colqwen2_pixel_budget_changes_token_count(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    model_dir = build_colqwen2(tmp_path_factory.mktemp("budget") / "colqwen2")
    image = PageContent(image=page_image(200, 280))
    small = load_encoder(model_dir, max_pixels=28 * 28 * 4)
    large = load_encoder(model_dir, max_pixels=28 * 28 * 16)
    n_small = small.encode_pages([image])[0].shape[0]
    n_large = large.encode_pages([image])[0].shape[0]
    assert n_small < n_large
    assert small.fingerprint != large.fingerprint
    with pytest.raises(EncoderError, match="min_pixels must not exceed"):
        load_encoder(model_dir, min_pixels=28 * 28 * 20, max_pixels=28 * 28 * 4)


def test_colpali_refuses_a_pixel_budget(tmp_path_factory: pytest.TempPathFactory) -> None:
    model_dir = build_colpali(tmp_path_factory.mktemp("nobudget") / "colpali")
    with pytest.raises(EncoderError, match="no pixel budget"):
        load_encoder(model_dir, max_pixels=1000)


def test_colmodernvbert_tiling_budget(tmp_path_factory: pytest.TempPathFactory) -> None:
    model_dir = build_colmodernvbert(tmp_path_factory.mktemp("tiles") / "colmodernvbert")
    image = PageContent(image=page_image(200, 280))
    tiled = load_encoder(model_dir)
    whole = load_encoder(model_dir, image_splitting=False)
    assert whole.encode_pages([image])[0].shape[0] < tiled.encode_pages([image])[0].shape[0]
    assert whole.fingerprint != tiled.fingerprint
