"""ColIdefics3 checkpoints as colpali-engine saves them (vidore/colSmol, vidore/colsmolvlm).

colpali-engine 0.3.18's ``ColIdefics3`` is transformers' ``Idefics3Model`` (SigLIP tower,
pixel-shuffle connector, Llama text model) plus a projection named ``linear``
(``model_type: idefics3``, architectures ``ColIdefics3``); weights are saved as
``model.*`` and ``linear.*``. transformers has no retrieval class for it, so the
backbone is built from the config and the weights mapped onto it by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latestore.encoders.prompts import IDEFICS3_ENGINE
from latestore.encoders.registry import register
from latestore.encoders.vision.common import architectures
from latestore.encoders.vision.idefics import IdeficsEngineEncoder

__all__ = ["ColIdefics3Encoder", "detect", "load"]


class ColIdefics3Encoder(IdeficsEngineEncoder):
    """Page-image and query vectors from a colpali-engine ColIdefics3 checkpoint."""

    family = "colidefics3"
    config_class = "Idefics3Config"
    model_class = "Idefics3Model"
    backbone_prefixes = ("model.",)
    projection_prefixes = ("linear.",)
    contract = IDEFICS3_ENGINE

    @staticmethod
    def _image_seq_len(config: Any) -> int:
        vision = config.vision_config
        side = int(vision.image_size) // int(vision.patch_size)
        return side * side // int(config.scale_factor) ** 2


def detect(model_dir: Path, config: dict[str, Any]) -> bool:
    return "ColIdefics3" in architectures(config)


@register("colidefics3", detect=detect)
def load(model_dir: Path, **options: Any) -> ColIdefics3Encoder:
    return ColIdefics3Encoder(model_dir, **options)
