"""ColQwen3 (Qwen3-VL) and ColQwen3.5 (Qwen3.5) from tiny checkpoints in published layouts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from latestore.encoders.base import PageContent
from latestore.encoders.registry import load_encoder
from latestore.encoders.vision.colqwen3 import ColQwen3Encoder
from latestore.encoders.vision.colqwen35 import ColQwen35Encoder
from latestore.errors import EncoderError
from tests.encoders.test_vision_hf import page_image
from tests.encoders.vision_checkpoints import (
    build_colqwen3,
    build_colqwen35,
    rename_weights,
    weight_names,
)


@pytest.fixture(scope="module", params=["tomoro", "ops", "nemotron"])
def colqwen3_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    naming = str(request.param)
    return build_colqwen3(tmp_path_factory.mktemp(naming) / naming, naming=naming)


@pytest.fixture(scope="module")
def colqwen35_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_colqwen35(tmp_path_factory.mktemp("q35") / "colqwen35")


def _check_vectors(vectors: list[np.ndarray], dim: int) -> None:
    for v in vectors:
        assert v.dtype == np.float32 and v.ndim == 2 and v.shape[1] == dim and v.shape[0] > 0
        assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)


def _roundtrip(model_dir: Path, dim: int) -> None:
    encoder = load_encoder(model_dir)
    pages = [PageContent(image=page_image()), PageContent(image=page_image(120, 50, 3))]
    page_vectors = encoder.encode_pages(pages)
    query_vectors = encoder.encode_queries(["revenue in 2023", "x"])
    _check_vectors([*page_vectors, *query_vectors], dim)
    assert encoder.dim == dim
    # "x" + 10 x <|endoftext|> augmentation: the query is longer than its text.
    assert query_vectors[1].shape[0] >= 10
    again = load_encoder(model_dir)
    assert again.fingerprint == encoder.fingerprint
    np.testing.assert_allclose(again.encode_pages(pages[:1])[0], page_vectors[0], atol=1e-5)
    np.testing.assert_allclose(again.encode_queries(["x"])[0], query_vectors[1], atol=1e-5)


def test_colqwen3_namings_load_and_encode(colqwen3_dir: Path) -> None:
    assert isinstance(load_encoder(colqwen3_dir), ColQwen3Encoder)
    _roundtrip(colqwen3_dir, 16)


def test_colqwen3_nemotron_is_bidirectional(colqwen3_dir: Path) -> None:
    encoder = load_encoder(colqwen3_dir)
    assert isinstance(encoder, ColQwen3Encoder)
    assert encoder.bidirectional == (colqwen3_dir.name == "nemotron")


@pytest.mark.parametrize(
    ("part", "rename"),
    [
        ("projection", ("_proj", "_proj_head.")),
        ("backbone", ("layers.0.mlp.down_proj", "layers.0.mlp.out_proj")),
        ("vision", ("visual.blocks.0.", "visual.block.0.")),
    ],
)
def test_colqwen3_misnamed_weights_refused(
    colqwen3_dir: Path, tmp_path: Path, part: str, rename: tuple[str, str]
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(colqwen3_dir, broken)
    old, new = rename
    if part == "projection":
        # Only the head: embedding_proj_layer.* / custom_text_proj.* -> an unknown name.
        rename_weights(broken, lambda k: "head." + k if k.startswith(("emb", "custom")) else k)
    else:
        rename_weights(broken, lambda k: k.replace(old, new))
    assert weight_names(broken) != weight_names(colqwen3_dir)
    with pytest.raises(EncoderError, match="randomly initialised"):
        load_encoder(broken)


def test_colqwen35_loads_with_bias_and_config_dim(colqwen35_dir: Path) -> None:
    encoder = load_encoder(colqwen35_dir)
    assert isinstance(encoder, ColQwen35Encoder)
    # Causal, as colpali-engine's ColQwen3_5 (tests/oracle measures the bidirectional option).
    assert not encoder.bidirectional
    assert "embedding_proj_layer.bias" in weight_names(colqwen35_dir)
    _roundtrip(colqwen35_dir, 20)


def test_colqwen35_bidirectional_attention_changes_early_tokens(colqwen35_dir: Path) -> None:
    both = ColQwen35Encoder(colqwen35_dir, bidirectional=True).encode_queries(
        ["late context matters"]
    )[0]
    causal = ColQwen35Encoder(colqwen35_dir).encode_queries(["late context matters"])[0]
    # With a causal mask the first token sees only itself; bidirectionally it sees all.
    assert not np.allclose(both[0], causal[0], atol=1e-4)
    batched = ColQwen35Encoder(colqwen35_dir, bidirectional=True).encode_queries(
        ["late context matters", "a"]
    )[0]
    np.testing.assert_allclose(batched, both, atol=1e-4)


@pytest.mark.parametrize("dim_key", ["dims", "dim", "projection_dim", "colbert_dim"])
def test_colqwen35_dim_keys_and_unbiased_projection(tmp_path: Path, dim_key: str) -> None:
    model_dir = build_colqwen35(
        tmp_path / "m", dim=12, dim_key=dim_key, bias=False, prefix="model."
    )
    encoder = load_encoder(model_dir)
    assert encoder.dim == 12
    _check_vectors(encoder.encode_queries(["q"]), 12)


def test_colqwen35_config_dim_must_match_projection(colqwen35_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(colqwen35_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["embed_dim"] = 320
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(EncoderError, match="dim 320"):
        load_encoder(broken)


def test_colqwen35_pixel_budget(colqwen35_dir: Path) -> None:
    image = [PageContent(image=page_image(300, 400))]
    small = load_encoder(colqwen35_dir, max_pixels=32 * 32 * 4)
    large = load_encoder(colqwen35_dir, max_pixels=32 * 32 * 16)
    assert small.encode_pages(image)[0].shape[0] < large.encode_pages(image)[0].shape[0]
    assert small.fingerprint != large.fingerprint
