"""ColQwen2 and ColQwen2.5 checkpoints as colpali-engine saves them.

colpali-engine's ``ColQwen2`` / ``ColQwen2_5`` classes are a Qwen2(.5)-VL backbone plus
``custom_text_proj`` (``model_type: qwen2_vl`` / ``qwen2_5_vl``, architectures
``ColQwen2`` / ``ColQwen2_5``): the layout of vidore/colqwen2-v1.0-merged,
Metric-AI/colqwen2.5-3b-multilingual and nomic-ai/colnomic-embed-multimodal. The
transformers-native ``*-hf`` checkpoints go through
:mod:`latestore.encoders.vision.transformers_native` instead. Same engine as ColQwen3
(:mod:`latestore.encoders.vision.qwen`), causal attention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latestore.encoders.registry import register
from latestore.encoders.vision.common import architectures
from latestore.encoders.vision.qwen import QwenBackbone, QwenVLRetriever

__all__ = ["ColQwen2EngineEncoder", "ColQwen25EngineEncoder", "detect", "load"]


class ColQwen2EngineEncoder(QwenVLRetriever):
    """Page-image and query vectors from a colpali-engine ColQwen2 checkpoint."""

    family = "colqwen2"
    backbone = QwenBackbone("Qwen2VLConfig", "Qwen2VLModel")


class ColQwen25EngineEncoder(QwenVLRetriever):
    """Page-image and query vectors from a colpali-engine ColQwen2.5 checkpoint."""

    family = "colqwen2.5"
    backbone = QwenBackbone("Qwen2_5_VLConfig", "Qwen2_5_VLModel")


_BY_ARCHITECTURE: dict[str, type[QwenVLRetriever]] = {
    "ColQwen2": ColQwen2EngineEncoder,
    "ColQwen2_5": ColQwen25EngineEncoder,
}


def detect(model_dir: Path, config: dict[str, Any]) -> bool:
    return any(arch in _BY_ARCHITECTURE for arch in architectures(config))


@register("colqwen2-engine", detect=detect)
def load(model_dir: Path, **options: Any) -> QwenVLRetriever:
    from latestore.encoders.vision.common import read_config

    config = read_config(model_dir)
    arch = next(a for a in architectures(config) if a in _BY_ARCHITECTURE)
    return _BY_ARCHITECTURE[arch](model_dir, config, **options)
