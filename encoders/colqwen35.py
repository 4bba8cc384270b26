"""ColQwen3.5: late-interaction retrievers on a Qwen3.5 vision-language backbone.

Checkpoints: vultr/VultronRetrieverFlash-Qwen3.5-0.8B (320 dims),
athrael-soju/colqwen3.5-4.5B. The projection is sized from the config (``embed_dim``,
``dims``, ``dim``, ``projection_dim`` or ``colbert_dim``), with a bias when the checkpoint
has one; attention is bidirectional for retrieval by default.

Qwen3.5 interleaves Gated-DeltaNet (linear, recurrent) layers with full-attention
layers. "Bidirectional" applies to the full-attention layers (a padding-only SDPA mask);
the recurrent layers are causal by construction and only get the padding mask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from latestore.encoders.colqwen import QwenPrompts, QwenVLRetriever
from latestore.encoders.colqwen3 import backbone_config
from latestore.encoders.vision_common import architectures, read_config
from latestore.errors import EncoderError

__all__ = ["ColQwen35Encoder", "detect", "load"]

MODEL_TYPES = {"colqwen3_5", "colqwen35", "colqwen3.5", "ops_colqwen3_5"}


def detect(model_dir: Path, config: dict[str, Any]) -> bool:
    if config.get("model_type") in MODEL_TYPES:
        return True
    return any(
        arch.lower().replace(".", "_").startswith(("colqwen3_5", "colqwen35"))
        for arch in architectures(config)
    )


def load(model_dir: Path, **options: Any) -> ColQwen35Encoder:
    return ColQwen35Encoder(model_dir, **options)


class ColQwen35Encoder(QwenVLRetriever):
    """Page-image and query vectors from a ColQwen3.5 checkpoint directory.

    Parameters are those of :class:`~latestore.encoders.colqwen3.ColQwen3Encoder`;
    ``bidirectional`` defaults to on.
    """

    family = "colqwen3.5"

    def __init__(
        self,
        model_dir: Path | str,
        *,
        bidirectional: bool = True,
        prompts: QwenPrompts | None = None,
        **options: Any,
    ) -> None:
        config = read_config(Path(model_dir))
        super().__init__(model_dir, config, bidirectional=bidirectional, prompts=prompts, **options)

    def _backbone(self, config: dict[str, Any]) -> Any:
        from transformers import Qwen3_5Config, Qwen3_5Model

        try:
            backbone = Qwen3_5Config(**backbone_config(config))
        except (TypeError, ValueError) as exc:
            raise EncoderError(f"{self.model_dir}: not a Qwen3.5 config: {exc}") from exc
        model_class: Any = Qwen3_5Model
        # SDPA: the bidirectional path hands it a boolean 4D mask.
        return model_class._from_config(backbone, attn_implementation="sdpa")

    def _attention_masks(self, full: torch.Tensor, mask: torch.Tensor) -> Any:
        # Recurrent layers take the 2D padding mask (None when nothing is padded).
        linear = None if bool(mask.all()) else mask
        return {"full_attention": full, "linear_attention": linear}
