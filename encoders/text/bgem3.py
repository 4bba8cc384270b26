"""BAAI/bge-m3's multi-vector (ColBERT) head.

The folder holds a plain XLM-RoBERTa checkpoint (``pytorch_model.bin`` or
``model.safetensors``, unprefixed names) and, beside it, ``colbert_linear.pt``: a torch
state dict ``{"weight", "bias"}`` of a ``hidden -> hidden`` linear layer. As in
FlagEmbedding, the vectors are that layer applied to the last hidden state of every
token except ``<s>``, padding removed, L2-normalised; no markers, no query expansion,
no skiplist. ``sparse_linear.pt`` (lexical weights) serves another output and is not
read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latestore.encoders.registry import register
from latestore.encoders.text import loading
from latestore.encoders.text import options as kit
from latestore.encoders.text.colbert_model import ColBERTNet, Projection, PromptSettings
from latestore.errors import EncoderError

__all__ = ["FAMILY", "detect", "load"]

FAMILY = "bge-m3"
HEAD_FILE = "colbert_linear.pt"

DEFAULT_PROMPTS = PromptSettings(
    query_marker=None,
    document_marker=None,
    query_length=512,
    document_length=8192,
    query_expansion=False,
    attend_to_expansion=False,
    skiplist=(),
    drop_first_token=True,
)


def detect(model_dir: Path, config: dict[str, Any]) -> bool:
    """A ``colbert_linear.pt`` head file beside the backbone."""
    return (model_dir / HEAD_FILE).is_file()


@register("bge-m3", detect=detect)
def load(model_dir: Path, **options: Any) -> Any:
    """Load a bge-m3 style folder; every backbone and head tensor must be used.

    Raises
    ------
    EncoderError
        On an unused or missing weight, a malformed head, or an unusable tokenizer.
    """
    import dataclasses

    runtime, overrides = kit.split_options(options)
    config = loading.read_json(model_dir / "config.json")
    files = loading.weight_files(model_dir)
    backbone_tensors = loading.strip_prefixes(loading.read_tensors(files), ("roberta.", "model."))
    head_tensors = loading.read_tensors([model_dir / HEAD_FILE])
    if "weight" not in head_tensors:
        raise EncoderError(f"{model_dir / HEAD_FILE} has no 'weight' tensor")
    weight = head_tensors["weight"]
    if weight.dim() != 2:
        raise EncoderError(
            f"{model_dir / HEAD_FILE}: weight must be 2-D, got {tuple(weight.shape)}"
        )
    with_pooler = any(key.startswith("pooler.") for key in backbone_tensors)
    backbone = loading.backbone_from_config(
        kit.hf_config(config, model_dir), with_pooler=with_pooler
    )
    projection = Projection(weight.shape[1], weight.shape[0], bias="bias" in head_tensors)
    net = ColBERTNet(backbone, projection)
    named = {f"backbone.{k}": v for k, v in backbone_tensors.items()}
    named |= {f"projection.linear.{k}": v for k, v in head_tensors.items()}
    loading.load_exact(net, named, source=f"checkpoint {model_dir}")
    return kit.build_encoder(
        net=net,
        tokenizer=kit.load_tokenizer(model_dir),
        prompts=dataclasses.replace(DEFAULT_PROMPTS, **overrides),
        family=FAMILY,
        model_dir=model_dir,
        files=[*files, model_dir / HEAD_FILE],
        runtime=runtime,
        config=config,
    )
