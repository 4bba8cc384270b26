"""ColPali in colpali-engine's layout: strict loading, refusals and batch independence.

Equality with colpali-engine itself is in tests/oracle/test_paligemma_oracle.py; here
the checkpoint (saved by colpali-engine's class) is damaged on purpose and must be
refused with a typed error, never run with randomly initialised weights.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latestore.encoders.base import PageContent
from latestore.encoders.prompts import COLPALI_ENGINE, PromptContract
from latestore.encoders.registry import load_encoder
from latestore.encoders.vision.colpali_engine import ColPaliEngineEncoder
from latestore.errors import EncoderError, LatestoreError
from tests.encoders.vision_checkpoints import rename_weights, weight_names
from tests.oracle.reference_gemma import build_engine_colpali

QUERIES = ["revenue", "a much longer query about the federal budget", "Déclaration"]


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_engine_colpali(tmp_path_factory.mktemp("colpali") / "engine")


def _copy(engine_dir: Path, out: Path) -> Path:
    shutil.copytree(engine_dir, out)
    return out


def test_registry_picks_the_engine_family(engine_dir: Path) -> None:
    encoder = load_encoder(engine_dir, device="cpu")
    assert isinstance(encoder, ColPaliEngineEncoder)
    assert encoder.spec == str(engine_dir.resolve())  # type: ignore[attr-defined]
    assert encoder.dim == 128


def test_vectors_do_not_depend_on_the_batch(engine_dir: Path) -> None:
    """Queries of different lengths padded together give each one's own vectors."""
    batched = load_encoder(engine_dir, device="cpu", batch_size=len(QUERIES))
    alone = load_encoder(engine_dir, device="cpu", batch_size=1)
    for a, b in zip(batched.encode_queries(QUERIES), alone.encode_queries(QUERIES), strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-5)
    pages = [PageContent(image=Image.new("RGB", (40 + 30 * i, 60), "white")) for i in range(3)]
    for a, b in zip(batched.encode_pages(pages), alone.encode_pages(pages), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
        assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_a_renamed_backbone_weight_is_refused(engine_dir: Path, tmp_path: Path) -> None:
    model_dir = _copy(engine_dir, tmp_path / "bad")
    victim = next(n for n in weight_names(model_dir) if "layers.0.mlp.up_proj" in n)
    rename_weights(model_dir, lambda k: k.replace(victim, victim.replace("mlp", "ffn")))
    with pytest.raises(EncoderError, match="refusing to run with randomly initialised"):
        load_encoder(model_dir, device="cpu")


def test_a_checkpoint_without_the_projection_is_refused(engine_dir: Path, tmp_path: Path) -> None:
    model_dir = _copy(engine_dir, tmp_path / "noproj")
    rename_weights(model_dir, lambda k: k.replace("custom_text_proj", "text_head"))
    with pytest.raises(EncoderError, match="no custom_text_proj"):
        load_encoder(model_dir, device="cpu")


def test_a_peft_adapter_is_refused_with_its_remedy(tmp_path: Path) -> None:
    # vidore/colpali-v1.3 itself: a LoRA adapter over the ColPali base, no config.json.
    adapter = tmp_path / "colpali-v1.3"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "vidore/colpaligemma-3b-pt-448-base"})
    )
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(LatestoreError, match=r"PEFT adapter.*merge"):
        load_encoder(adapter, device="cpu")


def test_prompt_override_is_checked_and_fingerprinted(engine_dir: Path) -> None:
    with pytest.raises(EncoderError, match=r"\{image\}"):
        ColPaliEngineEncoder(engine_dir, device="cpu", prompts=PromptContract(page_template=""))
    default = ColPaliEngineEncoder(engine_dir, device="cpu")
    other = ColPaliEngineEncoder(
        engine_dir,
        device="cpu",
        prompts=PromptContract(
            query_prefix="<bos>Question: ",
            query_augmentation=COLPALI_ENGINE.query_augmentation,
            page_template=COLPALI_ENGINE.page_template,
        ),
    )
    assert default.fingerprint != other.fingerprint
    assert (
        other.encode_queries(["abc"])[0].shape[0]
        == default.encode_queries(["abc"])[0].shape[0] + 10
    )
