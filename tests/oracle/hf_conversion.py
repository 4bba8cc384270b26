"""colpali-engine checkpoints converted to transformers' ``*-hf`` layout.

The renames follow transformers' conversion scripts (``convert_colqwen2_weights_to_hf``,
``convert_colmodernvbert_weights_to_hf``): the backbone goes under ``vlm.``, the
projection becomes ``embedding_proj_layer``, and the config wraps the backbone's as
``vlm_config``. The converted model is rebuilt with transformers' ``*ForRetrieval`` class,
loaded strictly and saved with its own ``save_pretrained``, beside transformers' own
processor, so the directory is what a ``*-hf`` checkpoint holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

# Saved engine name prefix -> -hf name prefix, most specific first.
# colpali-engine's ColQwen2 is a Qwen2VLModel: it saves `visual.*` / `language_model.*`.
COLQWEN2_RENAMES = (
    ("custom_text_proj.", "embedding_proj_layer."),
    ("", "vlm."),
)
COLMODERNVBERT_RENAMES = (
    ("base_model.model.custom_text_proj.", "embedding_proj_layer."),
    ("base_model.model.model.", "vlm."),
    ("model.", "vlm."),
)


def _renamed(
    state: dict[str, torch.Tensor], renames: tuple[tuple[str, str], ...]
) -> dict[str, Any]:
    out = {}
    for name, tensor in state.items():
        source, target = next((s, t) for s, t in renames if name.startswith(s))
        out[target + name[len(source) :]] = tensor
    return out


def _convert(
    engine_dir: Path,
    out: Path,
    renames: tuple[tuple[str, str], ...],
    build: Callable[[dict[str, Any], int], tuple[Any, Any]],
) -> Path:
    state = _renamed(load_file(str(engine_dir / "model.safetensors")), renames)
    vlm_config = json.loads((engine_dir / "config.json").read_text())
    for key in ("architectures", "transformers_version", "dtype"):
        vlm_config.pop(key, None)
    model, processor = build(vlm_config, int(state["embedding_proj_layer.weight"].shape[0]))
    model.load_state_dict(state, strict=True)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def colqwen2_hf(engine_dir: Path, out: Path) -> Path:
    """A colpali-engine ColQwen2 checkpoint as vidore/colqwen2-v1.0-hf holds it."""
    from transformers import (
        AutoImageProcessor,
        AutoTokenizer,
        ColQwen2Config,
        ColQwen2ForRetrieval,
        ColQwen2Processor,
    )

    def build(vlm_config: dict[str, Any], dim: int) -> tuple[Any, Any]:
        config = ColQwen2Config(vlm_config=vlm_config, embedding_dim=dim)
        config.architectures = ["ColQwen2ForRetrieval"]
        processor = ColQwen2Processor(
            image_processor=AutoImageProcessor.from_pretrained(str(engine_dir)),
            tokenizer=AutoTokenizer.from_pretrained(str(engine_dir)),
        )
        return ColQwen2ForRetrieval(config).eval(), processor

    return _convert(engine_dir, out, COLQWEN2_RENAMES, build)


def colmodernvbert_hf(engine_dir: Path, out: Path) -> Path:
    """A colpali-engine ColModernVBert checkpoint as colmodernvbert-merged holds it."""
    from transformers import (
        AutoTokenizer,
        ColModernVBertConfig,
        ColModernVBertForRetrieval,
        ColModernVBertProcessor,
        Idefics3ImageProcessor,
    )

    saved = json.loads((engine_dir / "processor_config.json").read_text())

    def build(vlm_config: dict[str, Any], dim: int) -> tuple[Any, Any]:
        config = ColModernVBertConfig(vlm_config=vlm_config, embedding_dim=dim)
        config.architectures = ["ColModernVBertForRetrieval"]
        processor = ColModernVBertProcessor(
            image_processor=Idefics3ImageProcessor.from_dict(saved["image_processor"]),
            tokenizer=AutoTokenizer.from_pretrained(str(engine_dir)),
            image_seq_len=saved["image_seq_len"],
        )
        return ColModernVBertForRetrieval(config).eval(), processor

    return _convert(engine_dir, out, COLMODERNVBERT_RENAMES, build)
