"""ColModernVBert checkpoints as colpali-engine saves them (ModernVBERT/colmodernvbert).

colpali-engine 0.3.18's ``ColModernVBert`` is transformers' ``ModernVBertModel`` plus
``custom_text_proj`` (``model_type: modernvbert``, architectures ``ColModernVBert``).
Its ``save_pretrained`` writes the text tower and the projection under the PEFT-style
names it loads from (``base_model.model.model.text_model.*``,
``base_model.model.custom_text_proj.*``) and the vision tower and connector under
``model.*``; both spellings are read. The transformers-native ``-hf`` checkpoints
(ModernVBERT/colmodernvbert-merged, ``model_type: colmodernvbert``) go through
:mod:`latestore.encoders.vision.transformers_native` instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latestore.encoders.prompts import MODERNVBERT_ENGINE
from latestore.encoders.registry import register
from latestore.encoders.vision.common import architectures
from latestore.encoders.vision.idefics import IdeficsEngineEncoder

__all__ = ["ColModernVBertEngineEncoder", "detect", "load"]


class ColModernVBertEngineEncoder(IdeficsEngineEncoder):
    """Page-image and query vectors from a colpali-engine ColModernVBert checkpoint."""

    family = "colmodernvbert"
    config_class = "ModernVBertConfig"
    model_class = "ModernVBertModel"
    backbone_prefixes = ("base_model.model.model.", "model.")
    projection_prefixes = ("base_model.model.custom_text_proj.", "custom_text_proj.")
    contract = MODERNVBERT_ENGINE

    @staticmethod
    def _image_seq_len(config: Any) -> int:
        vision = config.vision_config
        side = int(vision.image_size) // int(vision.patch_size)
        return side * side // int(config.pixel_shuffle_factor) ** 2


def detect(model_dir: Path, config: dict[str, Any]) -> bool:
    return "ColModernVBert" in architectures(config)


@register("colmodernvbert-engine", detect=detect)
def load(model_dir: Path, **options: Any) -> ColModernVBertEngineEncoder:
    return ColModernVBertEngineEncoder(model_dir, **options)
