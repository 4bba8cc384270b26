"""ColQwen3: late-interaction retrievers on a Qwen3-VL backbone.

Checkpoints: TomoroAI/tomoro-colqwen3-embed-4b/8b (``model_type: colqwen3``, weights
``vlm.model.*`` + ``embedding_proj_layer``, dim in ``embed_dim``), OpenSearch-AI/
Ops-Colqwen3-4B (``ops_colqwen3``, unprefixed ``visual.*``/``language_model.*``, dim in
``dims``), nvidia/nemotron-colembed-vl-4b-v2 (``qwen3_vl_nemotron_embed``, ``model.*``)
and colpali-engine's own ``ColQwen3`` saves (``qwen3_vl``, ``model.*``). The engine,
weight mapping and strict checks live in :mod:`latestore.encoders.vision.qwen`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latestore.encoders.prompts import PromptContract
from latestore.encoders.registry import register
from latestore.encoders.vision.common import architectures, read_config
from latestore.encoders.vision.qwen import QwenBackbone, QwenVLRetriever

__all__ = ["ColQwen3Encoder", "detect", "load"]

MODEL_TYPES = {"colqwen3", "ops_colqwen3", "qwen3_vl_nemotron_embed"}
# nemotron-colembed turns the decoder bidirectional for retrieval; the others stay causal.
BIDIRECTIONAL_BY_DEFAULT = {"qwen3_vl_nemotron_embed"}


def detect(model_dir: Path, config: dict[str, Any]) -> bool:
    if config.get("model_type") in MODEL_TYPES:
        return True
    return any(
        (arch.lower().startswith(("colqwen3", "opscolqwen3")) and "3_5" not in arch)
        or ("nemotron" in arch.lower() and "embed" in arch.lower())
        for arch in architectures(config)
    )


@register("colqwen3", detect=detect)
def load(model_dir: Path, **options: Any) -> ColQwen3Encoder:
    return ColQwen3Encoder(model_dir, **options)


class ColQwen3Encoder(QwenVLRetriever):
    """Page-image and query vectors from a ColQwen3 checkpoint directory.

    Parameters
    ----------
    model_dir:
        Local checkpoint (config.json, *.safetensors, tokenizer and preprocessor files).
    min_pixels, max_pixels:
        Visual-token budget: tokens ~ pixels / 32**2 (patch 16, 2x2 merge).
    bidirectional:
        Non-causal attention in the language model; defaults to what the family was
        trained with (nemotron: on, the others: off).
    prompts:
        Override the page template / query prefix / augmentation.
    """

    family = "colqwen3"
    backbone = QwenBackbone("Qwen3VLConfig", "Qwen3VLModel")

    def __init__(
        self,
        model_dir: Path | str,
        *,
        bidirectional: bool | None = None,
        prompts: PromptContract | None = None,
        **options: Any,
    ) -> None:
        config = read_config(Path(model_dir))
        if bidirectional is None:
            bidirectional = config.get("model_type") in BIDIRECTIONAL_BY_DEFAULT
        super().__init__(model_dir, config, bidirectional=bidirectional, prompts=prompts, **options)
