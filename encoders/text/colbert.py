"""ColBERT checkpoints in the Stanford ``HF_ColBERT`` layout.

Covers colbert-ir/colbertv2.0 and answerdotai/answerai-colbert-small-v1 (BERT,
``bert.*`` weights and a bias-free ``linear.weight`` projection) and
jinaai/jina-colbert-v2 (XLM-RoBERTa under ``roberta.*``, projection named
``linear.weight`` or ``colbert_linear.weight``, Jina's rotary "flash" backbone).
Markers, lengths and expansion come from ``artifact.metadata``, the ColBERTConfig that
colbert-ai writes beside the weights; its defaults apply where a key is absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from latestore.encoders.registry import register
from latestore.encoders.text.colbert_model import ColBERTNet, Projection, PromptSettings
from latestore.encoders.text.jina import (
    JinaXLMRobertaConfig,
    JinaXLMRobertaModel,
    is_jina_flash_checkpoint,
)
from latestore.encoders.text.loading import (
    backbone_from_config,
    load_exact,
    read_json,
    read_tensors,
    strip_prefixes,
    weight_files,
)
from latestore.encoders.text.options import (
    build_encoder,
    hf_config,
    load_tokenizer,
    split_options,
)
from latestore.errors import EncoderError

__all__ = ["FAMILY", "detect", "load"]

FAMILY = "colbert"
_PROJECTIONS = ("linear", "colbert_linear")
_BACKBONE_PREFIXES = ("bert.", "roberta.", "model.")


def _safetensors_keys(model_dir: Path) -> set[str]:
    """Tensor names from a single safetensors header, without reading the data."""
    path = model_dir / "model.safetensors"
    if not path.is_file():
        return set()
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return set(handle.keys())
    except Exception:  # a corrupt file is reported by load(), not by detection
        return set()


def detect(model_dir: Path, config: dict[str, Any]) -> bool:
    """``HF_ColBERT`` architecture, a colbert-ai ``artifact.metadata``, or a top-level
    ColBERT projection tensor."""
    if "HF_ColBERT" in (config.get("architectures") or []):
        return True
    if (model_dir / "artifact.metadata").is_file():
        return True
    keys = _safetensors_keys(model_dir)
    return any(f"{name}.weight" in keys for name in _PROJECTIONS)


def _split_projection(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool]:
    """Pull the projection out of the checkpoint; returns it (renamed) and whether it has a bias."""
    found = [name for name in _PROJECTIONS if f"{name}.weight" in tensors]
    if not found:
        raise EncoderError(
            "no ColBERT projection in the checkpoint: expected 'linear.weight' or "
            "'colbert_linear.weight'"
        )
    if len(found) > 1:
        raise EncoderError(f"two ColBERT projections in the checkpoint: {found}")
    name = found[0]
    head = {"projection.linear.weight": tensors.pop(f"{name}.weight")}
    bias = tensors.pop(f"{name}.bias", None)
    if bias is not None:
        head["projection.linear.bias"] = bias
    return head, bias is not None


def _prompts(meta: dict[str, Any], jina: bool, overrides: dict[str, Any]) -> PromptSettings:
    # Jina's checkpoints were trained with their own markers and attended expansion (its
    # card passes both to PyLate). Lengths absent from the metadata take PyLate's
    # defaults, which are also colbert-ai's ColBERTConfig defaults: 32 and 180.
    query_marker = "[QueryMarker]" if jina else "[unused0]"
    document_marker = "[DocumentMarker]" if jina else "[unused1]"
    settings: dict[str, Any] = {
        "query_marker": meta.get("query_token_id", query_marker),
        "document_marker": meta.get("doc_token_id", document_marker),
        "query_length": int(meta.get("query_maxlen", 32)),
        "document_length": int(meta.get("doc_maxlen", 180)),
        "attend_to_expansion": bool(meta.get("attend_to_mask_tokens", jina)),
    }
    if not meta.get("mask_punctuation", True):
        settings["skiplist"] = ()
    settings.update(overrides)
    return PromptSettings(**settings)


@register("colbert", detect=detect, generic=True)
def load(model_dir: Path, **options: Any) -> Any:
    """Load an ``HF_ColBERT``-layout checkpoint directory.

    Parameters
    ----------
    model_dir:
        The checkpoint folder.
    **options:
        ``device``, ``dtype``, ``batch_size``, ``name`` and prompt overrides
        (``query_length``, ``document_length``, ``attend_to_expansion``, ...).

    Raises
    ------
    EncoderError
        On any unused or missing weight, or an unusable tokenizer or config.
    """
    runtime, overrides = split_options(options)
    config = read_json(model_dir / "config.json")
    files = weight_files(model_dir)
    tensors = read_tensors(files)
    head, has_bias = _split_projection(tensors)
    backbone_tensors = strip_prefixes(tensors, _BACKBONE_PREFIXES)
    jina = is_jina_flash_checkpoint(set(backbone_tensors))
    with_pooler = any(key.startswith("pooler.") for key in backbone_tensors)
    if jina:
        backbone: torch.nn.Module = JinaXLMRobertaModel(
            JinaXLMRobertaConfig.from_dict(config), with_pooler=with_pooler
        )
    elif config.get("position_embedding_type", "absolute") == "rotary":
        # transformers' XLM-RoBERTa would silently fall back to absolute positions.
        raise EncoderError(
            f"{model_dir}: rotary position embeddings need Jina's flash weight names "
            "(encoder.layers.N.mixer.Wqkv); these weights use other names"
        )
    else:
        backbone = backbone_from_config(hf_config(config, model_dir), with_pooler=with_pooler)
    weight = head["projection.linear.weight"]
    projection = Projection(weight.shape[1], weight.shape[0], bias=has_bias)
    net = ColBERTNet(backbone, projection)
    named = {f"backbone.{k}": v for k, v in backbone_tensors.items()} | head
    load_exact(net, named, source=f"checkpoint {model_dir}")
    meta = read_json(model_dir / "artifact.metadata")
    prompts = _prompts(meta, jina, overrides)
    return build_encoder(
        net=net,
        tokenizer=load_tokenizer(model_dir),
        prompts=prompts,
        family="colbert-jina" if jina else FAMILY,
        model_dir=model_dir,
        files=files,
        runtime=runtime,
        config=config,
    )
