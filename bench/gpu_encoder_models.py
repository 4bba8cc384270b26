"""Random-weight page encoders of the real sizes, for bench/gpu_encoders.py.

Nothing is downloaded: each model is built from a config (random init, on the device,
in the measured dtype) with colpali-engine's own class, and saved where latestore needs
a checkpoint directory. The configs are the published shapes:

* ColQwen2-2B: Qwen2-VL-2B (vidore/colqwen2-v1.0-merged), colpali-engine ``ColQwen2``,
  128 dims. latestore loads the very directory colpali-engine saved.
* ColQwen3.5-0.8B: Qwen3.5-0.8B (vultr/VultronRetrieverFlash-Qwen3.5-0.8B),
  colpali-engine ``ColQwen3_5``, 320 dims; the same directory for both sides.
* ColPali-3B: PaliGemma-3B at 448 px (vidore/colpali-v1.3). colpali-engine's ``ColPali``
  saved in its own layout, which latestore reads too; the same directory for both sides.

The tokenizers are the test suite's byte-level stand-ins (tests/encoders): the real
vocabularies are not available offline. The embedding tables keep the real vocabulary
size; page prompts come out ~20 tokens longer than with the real BPE merges, next to
~768-1,024 visual tokens per page.

``tiny=True`` swaps in the test suite's toy configs, so the whole benchmark runs on a CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.encoders.vision_checkpoints import (
    TINY_QWEN2_VISION,
    TINY_QWEN3_VISION,
    TINY_SIGLIP,
    _qwen_token_ids,
    gemma_tokenizer,
    qwen_tokenizer,
    tiny_qwen35_text,
    tiny_qwen_text,
)
from tests.oracle.reference import import_engine as _import_engine

# The visual-token budget of both Qwen checkpoints' processors (max_num_visual_tokens).
QWEN_MAX_VISUAL_TOKENS = 768
TINY_MAX_VISUAL_TOKENS = 32

QWEN2_2B_TEXT: dict[str, Any] = {
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "vocab_size": 151_936,
    "tie_word_embeddings": True,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
}
QWEN2_2B_VISION: dict[str, Any] = {
    "depth": 32,
    "embed_dim": 1280,
    "hidden_size": 1536,
    "num_heads": 16,
    "mlp_ratio": 4,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
}
# 24 layers, 3 Gated-DeltaNet : 1 full attention; 8 query / 2 KV heads of 256.
QWEN35_08B_TEXT: dict[str, Any] = {
    "hidden_size": 1024,
    "intermediate_size": 3584,
    "num_hidden_layers": 24,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "vocab_size": 248_320,
    "tie_word_embeddings": True,
    "layer_types": (["linear_attention"] * 3 + ["full_attention"]) * 6,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 16,
    "linear_key_head_dim": 128,
    "linear_value_head_dim": 128,
    "linear_conv_kernel_dim": 4,
    "rope_parameters": {
        "rope_type": "default",
        "rope_theta": 1e7,
        "mrope_section": [11, 11, 10],
        "mrope_interleaved": True,
        "partial_rotary_factor": 0.25,
    },
}
# The published Qwen3.5-0.8B vision config (no deepstack), as other projects pin it.
QWEN35_08B_VISION: dict[str, Any] = {
    "depth": 12,
    "hidden_act": "gelu_pytorch_tanh",
    "deepstack_visual_indexes": [],
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_heads": 12,
    "out_hidden_size": 1024,
    "patch_size": 16,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "num_position_embeddings": 2304,
}
PALIGEMMA_3B_TEXT: dict[str, Any] = {
    "model_type": "gemma",
    "hidden_size": 2048,
    "intermediate_size": 16384,
    "num_hidden_layers": 18,
    "num_attention_heads": 8,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "vocab_size": 257_216,
}
SIGLIP_SO400M_448: dict[str, Any] = {
    "model_type": "siglip_vision_model",
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "image_size": 448,
    "patch_size": 14,
    "projection_dim": 2048,
}


@dataclass(frozen=True)
class Built:
    """One model pair: the reference (in memory), its processor, latestore's directory."""

    reference: Any
    processor: Any
    checkpoint: Path
    note: str
    save_s: float  # writing latestore's checkpoint directory, outside every measurement


@dataclass(frozen=True)
class EncoderModel:
    name: str
    build: Callable[[Path, str, torch.dtype, bool], Built]


def import_engine() -> Any:
    """``colpali_engine.models`` (with the test suite's shim where torchvision is absent)."""
    try:
        return _import_engine()
    except pytest.skip.Exception as exc:  # a BaseException: say what is missing instead
        raise RuntimeError(f"colpali-engine is not importable: {exc}") from None


def _on_device(cls: Any, config: Any, device: str, dtype: torch.dtype) -> Any:
    torch.manual_seed(0)
    with torch.device(device):
        model = cls._from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model.eval()


def _qwen_image_processor(patch: int, tiny: bool) -> Any:
    from transformers import Qwen2VLImageProcessor

    tile = patch * 2
    budget = TINY_MAX_VISUAL_TOKENS if tiny else QWEN_MAX_VISUAL_TOKENS
    return Qwen2VLImageProcessor(
        min_pixels=tile * tile * 4, max_pixels=tile * tile * budget, patch_size=patch, merge_size=2
    )


def _build_qwen(
    model_class: str,
    processor_class: str,
    config: Callable[[Any, bool], Any],
    patch: int,
) -> Callable[[Path, str, torch.dtype, bool], Built]:
    def build(out: Path, device: str, dtype: torch.dtype, tiny: bool) -> Built:
        engine = import_engine()
        tokenizer = qwen_tokenizer()
        image_processor = _qwen_image_processor(patch, tiny)
        model = _on_device(getattr(engine, model_class), config(tokenizer, tiny), device, dtype)
        start = time.perf_counter()
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        image_processor.save_pretrained(out)
        save_s = time.perf_counter() - start
        processor = getattr(engine, processor_class)(
            image_processor=image_processor, tokenizer=tokenizer, video_processor=None
        )
        return Built(model, processor, out, "one checkpoint, both sides", save_s)

    return build


def _qwen2_config(tokenizer: Any, tiny: bool) -> Any:
    from transformers import Qwen2VLConfig

    text = tiny_qwen_text(tokenizer, [2, 3, 3]) if tiny else dict(QWEN2_2B_TEXT)
    vision = TINY_QWEN2_VISION if tiny else QWEN2_2B_VISION
    return Qwen2VLConfig(**_qwen_token_ids(tokenizer), text_config=text, vision_config=dict(vision))


def _qwen35_config(tokenizer: Any, tiny: bool) -> Any:
    from transformers import Qwen3_5Config

    text = tiny_qwen35_text(tokenizer) if tiny else dict(QWEN35_08B_TEXT)
    vision = TINY_QWEN3_VISION if tiny else QWEN35_08B_VISION
    config = Qwen3_5Config(
        **_qwen_token_ids(tokenizer), text_config=text, vision_config=dict(vision)
    )
    config.dim = 320  # ColQwen3_5 sizes its projection from `config.dim` (Vultron: 320)
    return config


def _paligemma(tokenizer: Any, tiny: bool) -> dict[str, Any]:
    if tiny:
        text = {
            "model_type": "gemma",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "vocab_size": len(tokenizer) + 8,
        }
        vision = dict(TINY_SIGLIP, projection_dim=32)
    else:
        text, vision = dict(PALIGEMMA_3B_TEXT), dict(SIGLIP_SO400M_448)
    return {
        "model_type": "paligemma",
        "image_token_index": tokenizer.convert_tokens_to_ids("<image>"),
        "projection_dim": int(vision["projection_dim"]),
        "text_config": text,
        "vision_config": vision,
    }


def _build_colpali(out: Path, device: str, dtype: torch.dtype, tiny: bool) -> Built:
    from transformers import PaliGemmaConfig, SiglipImageProcessor

    engine = import_engine()
    tokenizer = gemma_tokenizer()
    side = 28 if tiny else 448
    image_processor = SiglipImageProcessor(
        size={"height": side, "width": side},
        image_seq_length=(side // 14) ** 2,
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
    )
    # One checkpoint for both sides: colpali-engine's ColPali saved in its own layout,
    # which latestore reads (encoders/vision/colpali_engine.py), so vectors can be compared too.
    model = _on_device(
        engine.ColPali, PaliGemmaConfig(**_paligemma(tokenizer, tiny)), device, dtype
    )
    processor = engine.ColPaliProcessor(image_processor=image_processor, tokenizer=tokenizer)
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    save_s = time.perf_counter() - start
    return Built(model, processor, out, "one checkpoint, both sides", save_s)


MODELS: dict[str, EncoderModel] = {
    "colqwen2-2b": EncoderModel(
        "colqwen2-2b", _build_qwen("ColQwen2", "ColQwen2Processor", _qwen2_config, 14)
    ),
    "colqwen3.5-0.8b": EncoderModel(
        "colqwen3.5-0.8b", _build_qwen("ColQwen3_5", "ColQwen3_5Processor", _qwen35_config, 16)
    ),
    "colpali-3b": EncoderModel("colpali-3b", _build_colpali),
}
