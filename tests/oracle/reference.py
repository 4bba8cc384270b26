"""colpali-engine 0.3.18 as the oracle: tiny checkpoints built and saved by its classes.

Each builder makes a seeded random model with colpali-engine's own class, writes it with
``save_pretrained`` (so the weight names and config are the reference's, not ours) next
to the tokenizer and image processor, and returns the directory. :class:`Reference`
reloads it with the reference class and processor and encodes exactly as the library's
documentation does (``process_images`` / ``process_queries`` then ``model(**batch)``).

One test double: torchvision. Its only wheel here is a CUDA build that cannot load
beside the CPU torch, and colpali-engine imports the torchvision Qwen2-VL image
processor module and builds processors that want a video processor. Without
torchvision, :func:`import_engine` points that module at transformers' PIL twin (the
same ``smart_resize``) and lets a processor be built with no video processor; the image
path is transformers' PIL image processor, the one latestore also runs here.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.encoders.vision_checkpoints import (
    TINY_QWEN2_VISION,
    TINY_QWEN3_VISION,
    _qwen_token_ids,
    qwen_tokenizer,
    tiny_qwen35_text,
    tiny_qwen_text,
)

ENGINE_VERSION = "colpali-engine 0.3.18"
# Visual-token budget of the tiny Qwen checkpoints: a 20 dpi PDF page fits, 72 dpi does not.
QWEN_MIN_TOKENS, QWEN_MAX_TOKENS = 4, 32


def import_engine() -> Any:
    """``colpali_engine.models``, or a skip where colpali-engine is not installed."""
    try:
        importlib.import_module("torchvision")
    except ImportError:
        _without_torchvision()
    return pytest.importorskip("colpali_engine.models")


def _without_torchvision() -> None:
    pil = importlib.import_module("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl")
    sys.modules.setdefault("transformers.models.qwen2_vl.image_processing_qwen2_vl", pil)
    from transformers.processing_utils import ProcessorMixin

    if getattr(ProcessorMixin, "_latestore_no_video", False):
        return
    original = ProcessorMixin.check_argument_for_proper_class

    def check(self: Any, name: str, argument: Any) -> Any:
        if name == "video_processor" and argument is None:
            return None
        return original(self, name, argument)

    ProcessorMixin.check_argument_for_proper_class = check  # type: ignore[method-assign]
    ProcessorMixin._latestore_no_video = True  # type: ignore[attr-defined]


# -- tiny Qwen configs ------------------------------------------------------------------


_VISION_QWEN25 = {
    **{k: v for k, v in TINY_QWEN2_VISION.items() if k not in ("embed_dim", "mlp_ratio")},
    "intermediate_size": 64,
    "out_hidden_size": 32,
    "window_size": 56,
    "fullatt_block_indexes": [1],
}


def _qwen2_generation_config(config_class: str, vision: dict[str, Any]) -> Any:
    def build(tokenizer: Any) -> Any:
        import transformers

        return getattr(transformers, config_class)(
            **_qwen_token_ids(tokenizer),
            text_config=tiny_qwen_text(tokenizer, [2, 3, 3]),
            vision_config=dict(vision),
        )

    return build


def _qwen3_config(tokenizer: Any) -> Any:
    from transformers import Qwen3VLConfig

    return Qwen3VLConfig(
        **_qwen_token_ids(tokenizer),
        text_config=tiny_qwen_text(tokenizer, [2, 3, 3], rope={"mrope_interleaved": True}),
        vision_config={**TINY_QWEN3_VISION, "deepstack_visual_indexes": [0]},
    )


def _qwen35_config(tokenizer: Any, dim: int) -> Any:
    from transformers import Qwen3_5Config

    config = Qwen3_5Config(
        **_qwen_token_ids(tokenizer),
        text_config=tiny_qwen35_text(tokenizer),
        vision_config=dict(TINY_QWEN3_VISION),
    )
    # ColQwen3_5 sizes its projection from `config.dim` (Vultron: 320; default 128).
    config.dim = dim
    return config


@dataclass(frozen=True)
class QwenSpec:
    """One colpali-engine Qwen class: its name, config builder and image patch size."""

    model_class: str
    processor_class: str
    patch: int
    config: Any


QWEN_SPECS: dict[str, QwenSpec] = {
    "colqwen2": QwenSpec(
        "ColQwen2",
        "ColQwen2Processor",
        14,
        _qwen2_generation_config("Qwen2VLConfig", TINY_QWEN2_VISION),
    ),
    "colqwen2.5": QwenSpec(
        "ColQwen2_5",
        "ColQwen2_5_Processor",
        14,
        _qwen2_generation_config("Qwen2_5_VLConfig", _VISION_QWEN25),
    ),
    "colqwen3": QwenSpec("ColQwen3", "ColQwen3Processor", 16, _qwen3_config),
    "colqwen3.5-320": QwenSpec(
        "ColQwen3_5", "ColQwen3_5Processor", 16, lambda t: _qwen35_config(t, 320)
    ),
    "colqwen3.5-128": QwenSpec(
        "ColQwen3_5", "ColQwen3_5Processor", 16, lambda t: _qwen35_config(t, 128)
    ),
}


def build_engine_qwen(key: str, out: Path) -> Path:
    """A colpali-engine ColQwen checkpoint saved by the reference class itself."""
    from transformers import Qwen2VLImageProcessor

    engine = import_engine()
    spec = QWEN_SPECS[key]
    tokenizer = qwen_tokenizer()
    tile = spec.patch * 2
    image_processor = Qwen2VLImageProcessor(
        min_pixels=tile * tile * QWEN_MIN_TOKENS,
        max_pixels=tile * tile * QWEN_MAX_TOKENS,
        patch_size=spec.patch,
        merge_size=2,
    )
    torch.manual_seed(0)
    model = getattr(engine, spec.model_class)(spec.config(tokenizer)).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    image_processor.save_pretrained(out)
    return out


class Reference:
    """A checkpoint loaded and run by colpali-engine, as its README shows."""

    def __init__(self, model_dir: Path, model_class: str, processor_class: str) -> None:
        from transformers import AutoImageProcessor, AutoTokenizer

        engine = import_engine()
        self.model = (
            getattr(engine, model_class).from_pretrained(str(model_dir), dtype=torch.float32).eval()
        )
        self.processor = getattr(engine, processor_class)(
            image_processor=AutoImageProcessor.from_pretrained(str(model_dir)),
            tokenizer=AutoTokenizer.from_pretrained(str(model_dir)),
            video_processor=None,
        )

    def queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        return self._run(self.processor.process_queries(texts=list(texts)))

    def pages(self, images: Sequence[Any]) -> list[np.ndarray]:
        return [self._run(self.processor.process_images(images=[image]))[0] for image in images]

    def query_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return unpadded_ids(self.processor.process_queries(texts=list(texts)))

    def page_ids(self, image: Any) -> list[int]:
        return unpadded_ids(self.processor.process_images(images=[image]))[0]

    def _run(self, batch: Any) -> list[np.ndarray]:
        return run_model(self.model, batch)


def run_model(model: Any, batch: Any) -> list[np.ndarray]:
    """Each row's vectors without its padding (engine classes return a tensor, the
    transformers ``*ForRetrieval`` ones an output with ``embeddings``)."""
    with torch.inference_mode():
        out = model(**batch)
    out = getattr(out, "embeddings", out)
    mask = batch["attention_mask"].bool()
    return [out[row][mask[row]].float().numpy() for row in range(out.shape[0])]


def unpadded_ids(batch: Any) -> list[list[int]]:
    mask = batch["attention_mask"].bool()
    return [batch["input_ids"][row][mask[row]].tolist() for row in range(mask.shape[0])]
