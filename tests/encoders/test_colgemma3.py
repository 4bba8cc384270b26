"""ColGemma3 in colpali-engine's layout: damaged checkpoints are refused with a typed error.

Equality with colpali-engine is in tests/oracle/test_colgemma3_oracle.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from latestore.encoders.registry import load_encoder
from latestore.errors import EncoderError
from tests.encoders.vision_checkpoints import rename_weights, weight_names
from tests.oracle.reference_gemma import build_engine_colgemma3


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_engine_colgemma3(tmp_path_factory.mktemp("colgemma3") / "engine")


def test_a_missing_projection_is_refused(engine_dir: Path, tmp_path: Path) -> None:
    model_dir = shutil.copytree(engine_dir, tmp_path / "noproj")
    rename_weights(model_dir, lambda k: k.replace("custom_text_proj", "head"))
    with pytest.raises(EncoderError, match=r"does not match|custom_text_proj"):
        load_encoder(model_dir, device="cpu")


def test_a_renamed_backbone_weight_is_refused(engine_dir: Path, tmp_path: Path) -> None:
    model_dir = shutil.copytree(engine_dir, tmp_path / "bad")
    victim = next(n for n in weight_names(model_dir) if "layers.0.mlp.up_proj" in n)
    rename_weights(model_dir, lambda k: k.replace(victim, victim.replace("mlp", "ffn")))
    with pytest.raises(EncoderError, match="refusing to run with randomly initialised"):
        load_encoder(model_dir, device="cpu")


def test_a_tokenizer_without_chat_template_is_refused(engine_dir: Path, tmp_path: Path) -> None:
    model_dir = shutil.copytree(engine_dir, tmp_path / "notemplate")
    (model_dir / "chat_template.jinja").unlink()
    config_path = model_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("chat_template", None)
    config_path.write_text(json.dumps(config))
    with pytest.raises(EncoderError, match="chat template"):
        load_encoder(model_dir, device="cpu")
