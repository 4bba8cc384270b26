"""colpali-engine's Idefics3-style classes as the oracle: ColModernVBert and ColIdefics3.

Builders make seeded tiny models with colpali-engine's own classes and save them with
``save_pretrained`` next to the processor colpali-engine saves, so names and files are
the reference's. :class:`EngineReference` reloads a checkpoint with the reference
classes' ``from_pretrained`` and encodes as colpali-engine's README does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tests.encoders.vision_checkpoints import TINY_SIGLIP, _byte_alphabet, modernbert_tokenizer
from tests.oracle.reference import Reference, import_engine

# Tiles of 28 px, pages resized to 56 px on the long edge: a page becomes up to 2x2
# tiles plus the global view, so splitting and the global image both run.
_TILE, _LONGEST = 28, 56


def _idefics_image_processor() -> Any:
    from transformers import Idefics3ImageProcessor

    return Idefics3ImageProcessor(
        size={"longest_edge": _LONGEST},
        max_image_size={"longest_edge": _TILE},
        do_image_splitting=True,
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
    )


def smol_tokenizer() -> Any:
    """A byte-level BPE tokenizer with SmolVLM's chat, image and tile special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tiles = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<global-img>", *tiles]
    vocab = {t: i for i, t in enumerate(specials + _byte_alphabet())}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    return tokenizer


def _save(model: Any, processor: Any, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_engine_colmodernvbert(out: Path) -> Path:
    """colpali-engine ``ColModernVBert`` (ModernBERT + SigLIP), saved by the class."""
    from transformers import ModernVBertConfig

    engine = import_engine()
    processor = engine.ColModernVBertProcessor(
        image_processor=_idefics_image_processor(),
        tokenizer=modernbert_tokenizer(),
        image_seq_len=4,
    )
    tokenizer = processor.tokenizer
    config = ModernVBertConfig(
        image_token_id=processor.image_token_id,
        pixel_shuffle_factor=1,
        text_config={
            "model_type": "modernbert",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "global_attn_every_n_layers": 2,
            "local_attention": 16,
            "vocab_size": len(tokenizer) + 8,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.cls_token_id,
            "cls_token_id": tokenizer.cls_token_id,
            "eos_token_id": tokenizer.sep_token_id,
            "sep_token_id": tokenizer.sep_token_id,
        },
        vision_config=dict(TINY_SIGLIP),
    )
    torch.manual_seed(0)
    return _save(engine.ColModernVBert(config).eval(), processor, out)


def build_engine_colidefics3(out: Path) -> Path:
    """colpali-engine ``ColIdefics3`` (SigLIP + pixel shuffle + Llama), saved by the class."""
    from transformers import Idefics3Config

    engine = import_engine()
    processor = engine.ColIdefics3Processor(
        image_processor=_idefics_image_processor(), tokenizer=smol_tokenizer(), image_seq_len=4
    )
    tokenizer = processor.tokenizer
    config = Idefics3Config(
        image_token_id=processor.image_token_id,
        scale_factor=2,
        text_config={
            "model_type": "llama",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "vocab_size": len(tokenizer) + 8,
            "pad_token_id": tokenizer.pad_token_id,
        },
        # A 28 px tile is 4x4 patches of 7 px; the pixel shuffle (scale 2) makes 4 tokens.
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": _TILE,
            "patch_size": 7,
        },
    )
    torch.manual_seed(0)
    return _save(engine.ColIdefics3(config).eval(), processor, out)


ENGINE_CLASSES = {
    "colmodernvbert": ("ColModernVBert", "ColModernVBertProcessor"),
    "colidefics3": ("ColIdefics3", "ColIdefics3Processor"),
}


class EngineReference(Reference):
    """A checkpoint loaded by colpali-engine's classes and run as its README shows."""

    def __init__(self, model_dir: Path, family: str) -> None:
        engine = import_engine()
        model_class, processor_class = ENGINE_CLASSES[family]
        self.model = getattr(engine, model_class).from_pretrained(
            str(model_dir), dtype=torch.float32
        )
        self.model.eval()
        self.processor = getattr(engine, processor_class).from_pretrained(str(model_dir))
