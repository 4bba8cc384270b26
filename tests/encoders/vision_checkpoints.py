"""Tiny random-weight vision-retrieval checkpoints, written in each family's real layout.

Every builder writes what the published checkpoint directory holds (config.json,
model.safetensors with the published weight names, tokenizer and processor files) at toy
sizes: hidden 32, one or two layers, 28-56 pixel images. Nothing is downloaded.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def _byte_alphabet() -> list[str]:
    # GPT-2's byte-to-unicode table: the base vocabulary of every byte-level BPE.
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, extra = [], 0
    for byte in range(256):
        if byte in keep:
            chars.append(chr(byte))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def qwen_tokenizer() -> Any:
    """A byte-level BPE tokenizer with Qwen's special tokens (ids 0..6), no merges."""
    from transformers import Qwen2Tokenizer

    vocab = {token: i for i, token in enumerate(QWEN_SPECIALS + _byte_alphabet())}
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIALS[1:]})
    return tokenizer


def gemma_tokenizer() -> Any:
    from transformers import GemmaTokenizer

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<image>"]
    chars = ["▁", *string.ascii_letters, *string.digits, *string.punctuation]
    return GemmaTokenizer(vocab={t: i for i, t in enumerate(specials + chars)}, merges=[])


def _save_weights(model: torch.nn.Module, path: Path, rename: Callable[[str], str]) -> None:
    state = {rename(k): v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})


def rename_weights(model_dir: Path, rename: Callable[[str], str]) -> None:
    """Rewrite the checkpoint's weight names (to simulate a misnamed checkpoint)."""
    path = model_dir / "model.safetensors"
    state = load_file(str(path))
    save_file({rename(k): v for k, v in state.items()}, str(path), metadata={"format": "pt"})


def weight_names(model_dir: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), "pt") as handle:
        return sorted(handle.keys())


# -- transformers-native ColVision families --------------------------------------------


# The smallest SigLIP tower the ColPali and ColModernVBert configs accept.
TINY_SIGLIP: dict[str, Any] = {
    "model_type": "siglip_vision_model",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "image_size": 28,
    "patch_size": 14,
}


def save_tiny_model(model_class: Any, config: Any, processor: Any, out: Path) -> None:
    """Seeded random weights for ``config``, saved with its processor in ``out``."""
    config.architectures = [model_class.__name__]
    torch.manual_seed(0)
    model = model_class(config).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)


def build_colpali(out: Path, embedding_dim: int = 16) -> Path:
    """vidore/colpali-v1.3-hf: ColPaliForRetrieval over PaliGemma (SigLIP + Gemma)."""
    from transformers import (
        ColPaliConfig,
        ColPaliForRetrieval,
        ColPaliProcessor,
        SiglipImageProcessor,
    )

    image_processor = SiglipImageProcessor(
        size={"height": 28, "width": 28},
        image_seq_length=4,
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
    )
    processor = ColPaliProcessor(image_processor=image_processor, tokenizer=gemma_tokenizer())
    config = ColPaliConfig(
        embedding_dim=embedding_dim,
        vlm_config={
            "model_type": "paligemma",
            "image_token_index": 5,
            "projection_dim": 32,
            "text_config": {
                "model_type": "gemma",
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "num_key_value_heads": 1,
                "head_dim": 16,
                "vocab_size": len(processor.tokenizer) + 8,
            },
            "vision_config": dict(TINY_SIGLIP, projection_dim=32),
        },
    )
    save_tiny_model(ColPaliForRetrieval, config, processor, out)
    # The hub checkpoint predates transformers 5: its SigLIP tower keeps `vision_model.`.
    rename_weights(out, lambda k: k.replace("vlm.vision_tower.", "vlm.vision_tower.vision_model."))
    return out


# A Qwen2-VL vision tower: 14 px patches, 2x2 merge (28 px per token).
TINY_QWEN2_VISION: dict[str, Any] = {
    "depth": 2,
    "embed_dim": 32,
    "hidden_size": 32,
    "num_heads": 2,
    "mlp_ratio": 2,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
}


def build_colqwen2(out: Path, embedding_dim: int = 16) -> Path:
    """vidore/colqwen2-v1.0-hf: ColQwen2ForRetrieval over Qwen2-VL."""
    from transformers import (
        ColQwen2Config,
        ColQwen2ForRetrieval,
        ColQwen2Processor,
        Qwen2VLImageProcessor,
    )

    tokenizer = qwen_tokenizer()
    image_processor = Qwen2VLImageProcessor(
        min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16, patch_size=14, merge_size=2
    )
    processor = ColQwen2Processor(image_processor=image_processor, tokenizer=tokenizer)
    ids = tokenizer.convert_tokens_to_ids
    config = ColQwen2Config(
        embedding_dim=embedding_dim,
        vlm_config={
            "model_type": "qwen2_vl",
            "image_token_id": ids("<|image_pad|>"),
            "video_token_id": ids("<|video_pad|>"),
            "vision_start_token_id": ids("<|vision_start|>"),
            "vision_end_token_id": ids("<|vision_end|>"),
            "text_config": {
                "model_type": "qwen2_vl_text",
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "num_key_value_heads": 1,
                "vocab_size": len(tokenizer) + 8,
                "rope_parameters": {
                    "rope_type": "default",
                    "rope_theta": 10000.0,
                    "mrope_section": [2, 2, 4],
                },
            },
            "vision_config": {**TINY_QWEN2_VISION, "depth": 1},
        },
    )
    save_tiny_model(ColQwen2ForRetrieval, config, processor, out)
    return out


def read_config(model_dir: Path) -> dict[str, Any]:
    return dict(json.loads((model_dir / "config.json").read_text()))


def modernbert_tokenizer() -> Any:
    """A byte-level BPE tokenizer with ModernVBert's image/tile special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tiles = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    specials = ["<|padding|>", "<|endoftext|>", "[CLS]", "[SEP]", "[MASK]"]
    extra = ["<|begin_of_text|>", "<global-img>", *tiles]
    vocab = {t: i for i, t in enumerate(specials + extra + _byte_alphabet())}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<|padding|>",
        unk_token="<|endoftext|>",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": extra})
    return tokenizer


def build_colmodernvbert(out: Path, embedding_dim: int = 16) -> Path:
    """ModernVBERT/colmodernvbert-merged: ModernBERT + SigLIP, Idefics3-style tiling."""
    from transformers import (
        ColModernVBertConfig,
        ColModernVBertForRetrieval,
        ColModernVBertProcessor,
        Idefics3ImageProcessor,
    )

    image_processor = Idefics3ImageProcessor(
        size={"longest_edge": 56},
        max_image_size={"longest_edge": 28},
        do_image_splitting=True,
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
    )
    processor = ColModernVBertProcessor(
        image_processor=image_processor, tokenizer=modernbert_tokenizer(), image_seq_len=4
    )
    tokenizer = processor.tokenizer
    config = ColModernVBertConfig(
        embedding_dim=embedding_dim,
        vlm_config={
            "model_type": "modernvbert",
            "image_token_id": processor.image_token_id,
            "pixel_shuffle_factor": 1,
            "text_config": {
                "model_type": "modernbert",
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "global_attn_every_n_layers": 1,
                "vocab_size": len(tokenizer) + 8,
                "pad_token_id": tokenizer.pad_token_id,
                "bos_token_id": tokenizer.cls_token_id,
                "cls_token_id": tokenizer.cls_token_id,
                "eos_token_id": tokenizer.sep_token_id,
                "sep_token_id": tokenizer.sep_token_id,
            },
            "vision_config": dict(TINY_SIGLIP),
        },
    )
    save_tiny_model(ColModernVBertForRetrieval, config, processor, out)
    return out


# -- remote-code ColQwen3 / ColQwen3.5 families ---------------------------------------

# Published weight namings of the Qwen-VL backbone (visual.* / language_model.*).
QWEN_NAMINGS: dict[str, dict[str, Any]] = {
    # TomoroAI/tomoro-colqwen3-embed-4b/8b
    "tomoro": {
        "model_type": "colqwen3",
        "architectures": ["ColQwen3"],
        "prefix": "vlm.model.",
        "projection": "embedding_proj_layer",
        "dim_key": "embed_dim",
    },
    # OpenSearch-AI/Ops-Colqwen3-4B
    "ops": {
        "model_type": "ops_colqwen3",
        "architectures": ["OpsColQwen3Model"],
        "prefix": "",
        "projection": "custom_text_proj",
        "dim_key": "dims",
    },
    # nvidia/nemotron-colembed-vl-4b-v2
    "nemotron": {
        "model_type": "qwen3_vl_nemotron_embed",
        "architectures": ["Qwen3VLNemotronEmbedModel"],
        "prefix": "model.",
        "projection": "custom_text_proj",
        "dim_key": "dim",
    },
}


class _QwenFiles:
    """tokenizer files + preprocessor_config.json, as the checkpoints ship them."""

    def __init__(self, tokenizer: Any) -> None:
        from transformers import Qwen2VLImageProcessor

        self.tokenizer = tokenizer
        self.image_processor = Qwen2VLImageProcessor(
            min_pixels=32 * 32 * 4, max_pixels=32 * 32 * 16, patch_size=16, merge_size=2
        )

    def save_pretrained(self, out: Path) -> None:
        self.tokenizer.save_pretrained(out)
        self.image_processor.save_pretrained(out)


def _qwen_processor(tokenizer: Any) -> _QwenFiles:
    return _QwenFiles(tokenizer)


def _qwen_token_ids(tokenizer: Any) -> dict[str, int]:
    ids = tokenizer.convert_tokens_to_ids
    return {
        "image_token_id": ids("<|image_pad|>"),
        "video_token_id": ids("<|video_pad|>"),
        "vision_start_token_id": ids("<|vision_start|>"),
        "vision_end_token_id": ids("<|vision_end|>"),
    }


# A two-block Qwen3-VL vision tower: 16 px patches, 2x2 merge (32 px per token).
TINY_QWEN3_VISION: dict[str, Any] = {
    "depth": 2,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_heads": 2,
    "out_hidden_size": 32,
    "patch_size": 16,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "num_position_embeddings": 16,
}


def tiny_qwen_text(tokenizer: Any, mrope: list[int], **extra: Any) -> dict[str, Any]:
    """A two-layer, 32-wide Qwen text config; ``rope`` in ``extra`` adds rope parameters."""
    return {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "vocab_size": len(tokenizer) + 8,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": mrope,
            **extra.pop("rope", {}),
        },
        **extra,
    }


def tiny_qwen35_text(tokenizer: Any) -> dict[str, Any]:
    """Qwen3.5's hybrid text config: one Gated-DeltaNet layer, one attention layer."""
    return tiny_qwen_text(
        tokenizer,
        [2, 1, 1],
        rope={"mrope_interleaved": True, "partial_rotary_factor": 0.5},
        layer_types=["linear_attention", "full_attention"],
        linear_num_key_heads=2,
        linear_num_value_heads=2,
        linear_key_head_dim=8,
        linear_value_head_dim=8,
    )


def _write_qwen_retriever(
    out: Path,
    backbone: torch.nn.Module,
    config_dict: dict[str, Any],
    naming: dict[str, Any],
    dim: int,
    bias: bool,
    processor: Any,
    extra_config: dict[str, Any] | None = None,
) -> Path:
    hidden = int(config_dict["text_config"]["hidden_size"])
    torch.manual_seed(1)
    proj = torch.nn.Linear(hidden, dim, bias=bias)
    state = {naming["prefix"] + k: v for k, v in backbone.state_dict().items()}
    state |= {f"{naming['projection']}.{k}": v for k, v in proj.state_dict().items()}
    out.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.detach().contiguous().clone() for k, v in state.items()},
        str(out / "model.safetensors"),
        metadata={"format": "pt"},
    )
    config = {
        **config_dict,
        "model_type": naming["model_type"],
        "architectures": naming["architectures"],
        naming["dim_key"]: dim,
        **(extra_config or {}),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str))
    processor.save_pretrained(out)
    return out


def build_colqwen3(out: Path, naming: str = "tomoro", dim: int = 16) -> Path:
    """A ColQwen3 checkpoint (Qwen3-VL backbone) in one of the published weight namings."""
    from transformers import Qwen3VLConfig, Qwen3VLModel

    tokenizer = qwen_tokenizer()
    config = Qwen3VLConfig(
        **_qwen_token_ids(tokenizer),
        text_config=tiny_qwen_text(tokenizer, [2, 3, 3], rope={"mrope_interleaved": True}),
        vision_config={**TINY_QWEN3_VISION, "deepstack_visual_indexes": [0]},
    )
    torch.manual_seed(0)
    backbone = Qwen3VLModel(config).eval()
    config_dict = config.to_dict()
    return _write_qwen_retriever(
        out,
        backbone,
        config_dict,
        QWEN_NAMINGS[naming],
        dim,
        bias=naming == "tomoro",
        processor=_qwen_processor(tokenizer),
    )


def build_colqwen35(
    out: Path,
    dim: int = 20,
    dim_key: str = "embed_dim",
    bias: bool = True,
    prefix: str = "vlm.model.",
) -> Path:
    """A ColQwen3.5 checkpoint (Qwen3.5: Gated-DeltaNet + full-attention layers)."""
    from transformers import Qwen3_5Config, Qwen3_5Model

    tokenizer = qwen_tokenizer()
    config = Qwen3_5Config(
        **_qwen_token_ids(tokenizer),
        text_config=tiny_qwen35_text(tokenizer),
        vision_config={**TINY_QWEN3_VISION, "depth": 1},
    )
    torch.manual_seed(0)
    backbone = Qwen3_5Model(config).eval()
    naming = {
        "model_type": "colqwen3_5",
        "architectures": ["ColQwen3_5"],
        "prefix": prefix,
        "projection": "embedding_proj_layer" if prefix.startswith("vlm") else "custom_text_proj",
        "dim_key": dim_key,
    }
    return _write_qwen_retriever(
        out, backbone, config.to_dict(), naming, dim, bias, _qwen_processor(tokenizer)
    )
