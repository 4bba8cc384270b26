"""Pieces every ColBERT family loader shares: options, config, tokenizer, assembly."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from latestore.encoders.text.colbert_model import ColBERTEncoder, ColBERTNet, PromptSettings
from latestore.encoders.windows import WINDOW_OPTIONS, split_window_options
from latestore.errors import EncoderError

__all__ = ["build_encoder", "hf_config", "load_tokenizer", "max_positions", "split_options"]

RUNTIME_OPTIONS = ("device", "dtype", "batch_size", "name")
PROMPT_OPTIONS = tuple(f.name for f in dataclasses.fields(PromptSettings))


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Runtime options (window settings as ``windows``) and prompt overrides; an unknown
    name is an error, not ignored."""
    known = RUNTIME_OPTIONS + PROMPT_OPTIONS + WINDOW_OPTIONS
    unknown = set(options) - set(known)
    if unknown:
        raise EncoderError(
            f"unknown ColBERT option(s) {sorted(unknown)}; known: {', '.join(known)}"
        )
    windows, options = split_window_options(options)
    runtime: dict[str, Any] = {k: v for k, v in options.items() if k in RUNTIME_OPTIONS}
    runtime["windows"] = windows
    prompts = {k: v for k, v in options.items() if k in PROMPT_OPTIONS}
    if "skiplist" in prompts:
        prompts["skiplist"] = tuple(prompts["skiplist"])
    return runtime, prompts


def hf_config(config: dict[str, Any], model_dir: Path) -> Any:
    """A transformers config object from a config.json dict, never running remote code."""
    from transformers import AutoConfig

    values = {k: v for k, v in config.items() if k not in ("auto_map", "transformers_version")}
    model_type = values.pop("model_type", None)
    if not model_type:
        raise EncoderError(f"{model_dir / 'config.json'} names no model_type")
    try:
        return AutoConfig.for_model(model_type, **values)
    except (ValueError, KeyError) as exc:
        raise EncoderError(f"transformers does not know model_type {model_type!r}: {exc}") from exc


def load_tokenizer(model_dir: Path) -> Any:
    """The checkpoint's own tokenizer, read from local files only."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError, ... for bad folders
        raise EncoderError(f"cannot load the tokenizer of {model_dir}: {exc}") from exc


def max_positions(config: dict[str, Any]) -> int | None:
    """How many tokens the backbone can take; RoBERTa positions start after the pad id."""
    limit = config.get("max_position_embeddings")
    if not isinstance(limit, int):
        return None
    if config.get("model_type") in ("roberta", "xlm-roberta") and (
        config.get("position_embedding_type", "absolute") == "absolute"
    ):
        return limit - int(config.get("pad_token_id", 1)) - 1
    return limit


def build_encoder(
    *,
    net: ColBERTNet,
    tokenizer: Any,
    prompts: PromptSettings,
    family: str,
    model_dir: Path,
    files: Sequence[Path],
    runtime: dict[str, Any],
    config: dict[str, Any] | None = None,
) -> ColBERTEncoder:
    """A :class:`ColBERTEncoder` with token budgets clipped to what the backbone allows."""
    limit = max_positions(config or {})
    if limit is not None and max(prompts.query_length, prompts.document_length) > limit:
        prompts = dataclasses.replace(
            prompts,
            query_length=min(prompts.query_length, limit),
            document_length=min(prompts.document_length, limit),
        )
    if prompts.query_length < 3 or prompts.document_length < 3:
        raise EncoderError("query_length and document_length must leave room for text")
    return ColBERTEncoder(
        net=net,
        tokenizer=tokenizer,
        prompts=prompts,
        family=family,
        spec=str(model_dir.resolve()),
        files=files,
        **runtime,
    )
