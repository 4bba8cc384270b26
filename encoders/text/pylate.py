"""ColBERT checkpoints saved by PyLate (sentence-transformers layout).

lightonai/GTE-ModernColBERT-v1 and other PyLate models are a sentence-transformers
folder: ``modules.json`` lists the transformer at the root (``config.json`` +
``model.safetensors`` with unprefixed backbone names) and a ``Dense`` module in
``1_Dense/`` (``config.json`` with ``in_features``/``out_features``/``bias``/
``activation_function``, weights ``linear.weight`` [+ ``linear.bias``]).
``config_sentence_transformers.json`` carries PyLate's prompt contract: ``query_prefix``
/ ``document_prefix`` tokens (e.g. ``"[Q] "``), ``query_length``, ``document_length``,
``do_query_expansion``, ``attend_to_expansion_tokens`` and ``skiplist_words``.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import torch

from latestore.encoders.checkpoint import read_json_value
from latestore.encoders.registry import register
from latestore.encoders.text import loading
from latestore.encoders.text import options as kit
from latestore.encoders.text.colbert_model import ColBERTNet, Projection, PromptSettings
from latestore.encoders.text.jina import (
    JinaXLMRobertaConfig,
    JinaXLMRobertaModel,
    is_jina_flash_checkpoint,
)
from latestore.errors import EncoderError

__all__ = ["FAMILY", "detect", "load"]

FAMILY = "pylate"
ST_CONFIG = "config_sentence_transformers.json"
# Modules that change nothing PyLate's ColBERT output depends on (it normalises itself).
_HARMLESS_MODULES = ("sentence_transformers.models.Normalize",)


def _modules(model_dir: Path) -> list[dict[str, Any]]:
    path = model_dir / "modules.json"
    data = read_json_value(path)
    if data is None:
        return []
    if not isinstance(data, list):
        raise EncoderError(f"{path} is not a list of modules")
    return [m for m in data if isinstance(m, dict)]


def _is_dense(module: dict[str, Any]) -> bool:
    return str(module.get("type", "")).endswith(".Dense")


def detect(model_dir: Path, config: dict[str, Any]) -> bool:
    """A sentence-transformers folder with a Dense module and PyLate's ColBERT settings."""
    if "HF_ColBERT" in (config.get("architectures") or []):
        # Both layouts in one folder: the HF_ColBERT weights and artifact.metadata rule.
        return False
    modules = _modules(model_dir)
    if not any(_is_dense(m) for m in modules):
        return False
    st_config = loading.read_json(model_dir / ST_CONFIG)
    pylate_dense = any(str(m.get("type", "")).startswith("pylate.") for m in modules)
    return pylate_dense or "query_prefix" in st_config or st_config.get("model_type") == "ColBERT"


def _dense_folder(model_dir: Path, modules: list[dict[str, Any]]) -> Path:
    dense = [m for m in modules if _is_dense(m)]
    others = [
        m
        for m in modules
        if not _is_dense(m)
        and not str(m.get("type", "")).endswith(".Transformer")
        and m.get("type") not in _HARMLESS_MODULES
    ]
    if len(dense) != 1 or others:
        raise EncoderError(
            f"{model_dir / 'modules.json'}: expected a Transformer and one Dense module, got "
            f"{[m.get('type') for m in modules]}"
        )
    return model_dir / str(dense[0].get("path", "1_Dense"))


def _read_dense(folder: Path) -> tuple[Projection, dict[str, Any], list[Path]]:
    config = loading.read_json(folder / "config.json")
    try:
        in_features, out_features = int(config["in_features"]), int(config["out_features"])
    except (KeyError, TypeError, ValueError) as exc:
        raise EncoderError(f"{folder / 'config.json'} lacks in_features/out_features") from exc
    if config.get("use_residual"):
        raise EncoderError(f"{folder}: residual Dense layers are not supported")
    projection = Projection(
        in_features,
        out_features,
        bias=bool(config.get("bias", True)),
        activation=config.get("activation_function", "torch.nn.modules.linear.Identity"),
    )
    files = loading.weight_files(folder)
    tensors = {f"projection.{k}": v for k, v in loading.read_tensors(files).items()}
    return projection, tensors, files


def _prompts(st_config: dict[str, Any], overrides: dict[str, Any]) -> PromptSettings:
    settings: dict[str, Any] = {
        "query_marker": st_config.get("query_prefix", "[Q] "),
        "document_marker": st_config.get("document_prefix", "[D] "),
        "query_length": int(st_config.get("query_length") or 32),
        "document_length": int(st_config.get("document_length") or 180),
        "query_expansion": bool(st_config.get("do_query_expansion", True)),
        "attend_to_expansion": bool(st_config.get("attend_to_expansion_tokens", False)),
        "skiplist": tuple(st_config.get("skiplist_words") or string.punctuation),
    }
    settings.update(overrides)
    return PromptSettings(**settings)


@register("pylate", detect=detect)
def load(model_dir: Path, **options: Any) -> Any:
    """Load a PyLate ColBERT folder; every backbone and Dense tensor must be used.

    Raises
    ------
    EncoderError
        On an unused or missing weight, an unsupported module list, or a bad tokenizer.
    """
    runtime, overrides = kit.split_options(options)
    modules = _modules(model_dir)
    projection, head, dense_files = _read_dense(_dense_folder(model_dir, modules))
    config = loading.read_json(model_dir / "config.json")
    files = loading.weight_files(model_dir)
    # Root weights are the bare AutoModel; a "model." prefix appears when a task model
    # (e.g. ModernBertForMaskedLM) was saved, whose extra head weights then fail loudly.
    backbone_tensors = loading.strip_prefixes(
        loading.read_tensors(files), ("model.", "bert.", "roberta.")
    )
    with_pooler = any(key.startswith("pooler.") for key in backbone_tensors)
    backbone: torch.nn.Module
    if is_jina_flash_checkpoint(set(backbone_tensors)):
        # A Jina backbone saved by PyLate: jina-colbert-v2 loaded with its remote code (or
        # transformers' port, whose save converts back to these names) and saved again.
        backbone = JinaXLMRobertaModel(
            JinaXLMRobertaConfig.from_dict(config), with_pooler=with_pooler
        )
    else:
        backbone = loading.backbone_from_config(
            kit.hf_config(config, model_dir), with_pooler=with_pooler
        )
    net = ColBERTNet(backbone, projection)
    named = {f"backbone.{k}": v for k, v in backbone_tensors.items()} | head
    loading.load_exact(net, named, source=f"checkpoint {model_dir}")
    return kit.build_encoder(
        net=net,
        tokenizer=kit.load_tokenizer(model_dir),
        prompts=_prompts(loading.read_json(model_dir / ST_CONFIG), overrides),
        family=FAMILY,
        model_dir=model_dir,
        files=[*files, *dense_files],
        runtime=runtime,
        config=config,
    )
