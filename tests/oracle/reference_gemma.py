"""colpali-engine 0.3.18's Gemma-based classes as the oracle: ColPali (PaliGemma).

:func:`build_engine_colpali` makes a seeded random ``ColPali`` with colpali-engine's own
class and writes it with ``save_pretrained`` beside the processor colpali-engine's
``ColPaliProcessor`` saves, so the weight names, config and tokenizer are the
reference's. :class:`EngineColPali` reloads the directory with the reference class and
processor and encodes as colpali-engine's README does.

:func:`hub_layout` rewrites such a checkpoint the way the published
vidore/colpali-v1.3-merged was saved (before transformers 5 the SigLIP tower kept its
``vision_model.`` level), and :func:`hf_layout` converts it to transformers' native
``ColPaliForRetrieval`` layout (vidore/colpali-v1.3-hf), following transformers'
``convert_colpali_weights_to_hf.py``: the same tensors under ``vlm.*`` and
``embedding_proj_layer``, and transformers' ``ColPaliProcessor`` files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tests.encoders.vision_checkpoints import TINY_SIGLIP, rename_weights
from tests.oracle.reference import Reference, import_engine, run_model

# A 28 px SigLIP tower with 14 px patches: 4 image tokens per page (ColPali-v1.3: 1024).
IMAGE_SIZE, IMAGE_TOKENS = 28, 4
_PALIGEMMA_VISION = {**TINY_SIGLIP, "projection_dim": 32, "vision_use_head": False}


def paligemma_tokenizer() -> Any:
    """A character-level Gemma tokenizer that also knows a newline and some non-ASCII.

    The newline ends every page text; giving it its own id (rather than ``<unk>``)
    makes a missing or extra newline visible in the token ids.
    """
    import string

    from transformers import GemmaTokenizer

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<image>"]
    chars = ["▁", "\n", *string.ascii_letters, *string.digits, *string.punctuation, *"éèà年度"]
    return GemmaTokenizer(vocab={t: i for i, t in enumerate(specials + chars)}, merges=[])


def _siglip_processor() -> Any:
    from transformers import SiglipImageProcessor

    return SiglipImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_seq_length=IMAGE_TOKENS,
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
    )


def _paligemma_config(image_token_id: int, vocab: int) -> Any:
    from transformers import PaliGemmaConfig

    return PaliGemmaConfig(
        image_token_index=image_token_id,
        projection_dim=32,
        text_config={
            "model_type": "gemma",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "vocab_size": vocab,
        },
        vision_config=dict(_PALIGEMMA_VISION),
    )


def build_engine_colpali(out: Path) -> Path:
    """A colpali-engine ColPali checkpoint saved by the reference class itself."""
    engine = import_engine()
    processor = engine.ColPaliProcessor(
        image_processor=_siglip_processor(), tokenizer=paligemma_tokenizer()
    )
    config = _paligemma_config(processor.image_token_id, len(processor.tokenizer) + 8)
    torch.manual_seed(0)
    model = engine.ColPali(config).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _copy_processor_files(source: Path, out: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json", "processor_config.json"):
        if (source / name).is_file():
            (out / name).write_bytes((source / name).read_bytes())


def hub_layout(engine_dir: Path, out: Path) -> Path:
    """The same checkpoint under the names vidore/colpali-v1.3-merged was saved with.

    Its SigLIP tower keeps the ``vision_model.`` level, and the tied language-model head
    is written out, as transformers 4 saves did.
    """
    state = load_file(str(engine_dir / "model.safetensors"))
    renamed = {
        name.replace("model.vision_tower.", "model.vision_tower.vision_model."): tensor
        for name, tensor in state.items()
    }
    # Older saves also wrote the (tied) language-model head.
    embeddings = state["model.language_model.model.embed_tokens.weight"]
    renamed["model.language_model.lm_head.weight"] = embeddings.clone()
    out.mkdir(parents=True, exist_ok=True)
    save_file(renamed, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_bytes((engine_dir / "config.json").read_bytes())
    _copy_processor_files(engine_dir, out)
    return out


def hf_layout(engine_dir: Path, out: Path) -> Path:
    """The same weights as a transformers-native ColPaliForRetrieval checkpoint."""
    from transformers import (
        AutoImageProcessor,
        AutoTokenizer,
        ColPaliConfig,
        ColPaliForRetrieval,
        ColPaliProcessor,
    )

    state = load_file(str(engine_dir / "model.safetensors"))
    converted: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name.startswith("custom_text_proj."):
            converted["embedding_proj_layer." + name.removeprefix("custom_text_proj.")] = tensor
        elif name.startswith("model.language_model.model."):
            converted["vlm.language_model." + name.removeprefix("model.language_model.model.")] = (
                tensor
            )
        elif name.startswith("model."):
            converted["vlm." + name.removeprefix("model.")] = tensor
    vlm_config = json.loads((engine_dir / "config.json").read_text())
    vlm_config.pop("architectures", None)
    dim = int(state["custom_text_proj.weight"].shape[0])
    model = ColPaliForRetrieval(ColPaliConfig(vlm_config=vlm_config, embedding_dim=dim)).eval()
    model.load_state_dict(converted, strict=True)
    model.config.architectures = ["ColPaliForRetrieval"]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    # As vidore/colpali-v1.3-hf was saved: the SigLIP tower keeps `vision_model.`.
    rename_weights(out, lambda k: k.replace("vlm.vision_tower.", "vlm.vision_tower.vision_model."))
    processor = ColPaliProcessor(
        image_processor=AutoImageProcessor.from_pretrained(str(engine_dir)),
        tokenizer=AutoTokenizer.from_pretrained(str(engine_dir)),
    )
    processor.save_pretrained(out)
    return out


class EngineColPali(Reference):
    """A ColPali checkpoint loaded and run by colpali-engine, as its README shows."""

    def __init__(self, model_dir: Path) -> None:
        engine = import_engine()
        self.model = engine.ColPali.from_pretrained(str(model_dir), dtype=torch.float32).eval()
        self.processor = engine.ColPaliProcessor.from_pretrained(str(model_dir))

    def queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One query at a time: unpadded, as a padded batch runs causally (see below)."""
        batch_of = super().queries  # bound here: a comprehension has no zero-arg super
        return [batch_of([text])[0] for text in texts]

    def batched_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        """All queries in one padded batch.

        On transformers 5 a padded PaliGemma batch gets a causal mask, while an unpadded
        one is left to SDPA's non-causal path (the config's bidirectional attention), so
        these vectors depend on the batch; :meth:`queries` gives each query's own.
        """
        return super().queries(texts)


class HfColPali:
    """A ``-hf`` checkpoint run by transformers' own ColPaliForRetrieval and processor."""

    def __init__(self, model_dir: Path) -> None:
        from transformers import ColPaliForRetrieval, ColPaliProcessor

        self.model = ColPaliForRetrieval.from_pretrained(str(model_dir), dtype=torch.float32)
        self.model.eval()
        self.processor = ColPaliProcessor.from_pretrained(str(model_dir))

    def run(self, batch: Any) -> list[np.ndarray]:
        """Vectors of any tokenized batch (labels, a training input, are dropped)."""
        return run_model(self.model, {k: v for k, v in batch.items() if k != "labels"})

    def queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        return self.run(self.processor.process_queries(text=list(texts)))

    def pages(self, images: Sequence[Any]) -> list[np.ndarray]:
        return [self.run(self.processor.process_images(images=[image]))[0] for image in images]


# -- ColGemma3 ---------------------------------------------------------------------------

_GEMMA3_SPECIALS = [
    "<pad>",
    "<eos>",
    "<bos>",
    "<unk>",
    "<mask>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
]
# Gemma 3's chat template, reduced to what one user turn of text and images uses.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>"
    "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<start_of_image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}{% endfor %}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def gemma3_tokenizer() -> Any:
    """A character-level Gemma tokenizer with Gemma 3's turn and image tokens."""
    import string

    from transformers import GemmaTokenizer

    chars = ["▁", "\n", *string.ascii_letters, *string.digits, *string.punctuation, *"éèà年度"]
    tokenizer = GemmaTokenizer(
        vocab={t: i for i, t in enumerate(_GEMMA3_SPECIALS + chars)},
        merges=[],
        extra_special_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
        chat_template=GEMMA3_CHAT_TEMPLATE,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": _GEMMA3_SPECIALS[5:]})
    return tokenizer


def build_engine_colgemma3(out: Path) -> Path:
    """A colpali-engine ColGemma3 checkpoint saved by the reference class itself."""
    from transformers import Gemma3Config, Gemma3ImageProcessor

    engine = import_engine()
    tokenizer = gemma3_tokenizer()
    image_processor = Gemma3ImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    processor = engine.ColGemmaProcessor3(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_length=IMAGE_TOKENS,
        chat_template=GEMMA3_CHAT_TEMPLATE,
    )
    ids = tokenizer.convert_tokens_to_ids
    config = Gemma3Config(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "vocab_size": len(tokenizer) + 8,
            # Short enough that the long query runs past the sliding window.
            "sliding_window": 16,
            "layer_types": ["sliding_attention", "full_attention"],
        },
        vision_config={**TINY_SIGLIP, "vision_use_head": False},
        mm_tokens_per_image=IMAGE_TOKENS,
        boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"),
    )
    torch.manual_seed(0)
    model = engine.ColGemma3(config).eval()
    # Gemma 3 initialises the image projection to zeros, which would make every page's
    # image tokens alike; random values make the image reach the vectors.
    with torch.no_grad():
        model.multi_modal_projector.mm_input_projection_weight.normal_(std=0.5)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


class EngineColGemma3:
    """A ColGemma3 checkpoint loaded and run by colpali-engine."""

    def __init__(self, model_dir: Path) -> None:
        engine = import_engine()
        self.model = engine.ColGemma3.from_pretrained(str(model_dir), dtype=torch.float32).eval()
        self.processor = engine.ColGemmaProcessor3.from_pretrained(str(model_dir))

    def queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        return run_model(self.model, self.processor.process_queries(list(texts)))

    def pages(self, images: Sequence[Any]) -> list[np.ndarray]:
        return [
            run_model(self.model, self.processor.process_images([image]))[0] for image in images
        ]
