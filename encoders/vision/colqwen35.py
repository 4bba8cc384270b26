"""ColQwen3.5: late-interaction retrievers on a Qwen3.5 vision-language backbone.

Checkpoints: vultr/VultronRetrieverFlash-Qwen3.5-0.8B (320 dims, colpali-engine's
``ColQwen3_5`` class), athrael-soju/colqwen3.5-4.5B. The projection is sized from the
checkpoint (``embed_dim``, ``dims``, ``dim``, ``projection_dim`` or ``colbert_dim`` must
agree when present), with a bias when the checkpoint has one.

Qwen3.5 interleaves Gated-DeltaNet (linear, recurrent) layers with full-attention
layers. Attention is causal, as in the reference class; ``bidirectional=True`` makes the
full-attention layers bidirectional (the recurrent layers are causal by construction and
only get the padding mask).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latestore.encoders.registry import register
from latestore.encoders.vision.common import architectures
from latestore.encoders.vision.qwen import QwenBackbone, QwenVLRetriever

__all__ = ["ColQwen35Encoder", "detect", "load"]

MODEL_TYPES = {"colqwen3_5", "colqwen35", "colqwen3.5", "ops_colqwen3_5"}


def detect(model_dir: Path, config: dict[str, Any]) -> bool:
    if config.get("model_type") in MODEL_TYPES:
        return True
    return any(
        arch.lower().replace(".", "_").startswith(("colqwen3_5", "colqwen35"))
        for arch in architectures(config)
    )


@register("colqwen3.5", detect=detect)
def load(model_dir: Path, **options: Any) -> ColQwen35Encoder:
    return ColQwen35Encoder(model_dir, **options)


class ColQwen35Encoder(QwenVLRetriever):
    """Page-image and query vectors from a ColQwen3.5 checkpoint directory.

    Parameters are those of :class:`~latestore.encoders.vision.colqwen3.ColQwen3Encoder`;
    ``bidirectional`` defaults to off (causal), as in colpali-engine's ``ColQwen3_5``.
    """

    family = "colqwen3.5"
    backbone = QwenBackbone("Qwen3_5Config", "Qwen3_5Model", hybrid=True)
