"""Reading checkpoint files and loading them with no weight left behind.

transformers' ``from_pretrained`` only *warns* about unused or missing weights and then
initialises the missing ones at random. For a retrieval store that is the worst
failure mode: the vectors look fine and are silently meaningless. Every family here
therefore reads the tensors itself and loads them with :func:`load_exact`, which
refuses any key-set difference.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from latestore.errors import EncoderError

__all__ = [
    "IGNORABLE_SUFFIXES",
    "backbone_from_config",
    "load_exact",
    "read_json",
    "read_tensors",
    "strip_prefixes",
    "weight_files",
]

# Buffers that older transformers versions saved but newer ones rebuild deterministically
# (position ranges, all-zero token types); dropping them loses no trained value.
IGNORABLE_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")

_SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
_SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``{}`` when the file does not exist."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EncoderError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise EncoderError(f"{path} does not hold a JSON object")
    return data


def weight_files(folder: Path) -> list[Path]:
    """The backbone weight files of a transformers folder, in load order.

    safetensors wins over ``.bin`` as in transformers; sharded checkpoints are read
    through their index so that a stray extra file is never mixed in.

    Raises
    ------
    EncoderError
        When the folder holds no weights.
    """
    for index_name in _SHARD_INDEXES:
        index = folder / index_name
        if index.is_file():
            weight_map = read_json(index).get("weight_map", {})
            names = sorted(set(weight_map.values()))
            missing = [n for n in names if not (folder / n).is_file()]
            if missing:
                raise EncoderError(f"{index} names shards that are absent: {missing}")
            return [folder / n for n in names]
    for name in _SINGLE_FILES:
        if (folder / name).is_file():
            return [folder / name]
    raise EncoderError(
        f"no weights in {folder}: expected one of {', '.join(_SINGLE_FILES + _SHARD_INDEXES)}"
    )


def read_tensors(paths: Iterable[Path]) -> dict[str, torch.Tensor]:
    """All tensors of the given files, merged; duplicate names are an error.

    ``.bin``/``.pt`` files are read with ``weights_only=True`` so a checkpoint cannot
    run code at load.
    """
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for path in paths:
        try:
            if path.suffix == ".safetensors":
                part = load_file(str(path), device="cpu")
            else:
                part = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # safetensors, pickle and zip errors have no common base
            raise EncoderError(f"cannot read weights {path}: {exc}") from exc
        if not isinstance(part, Mapping) or not all(
            isinstance(v, torch.Tensor) for v in part.values()
        ):
            raise EncoderError(f"{path} is not a flat state dict of tensors")
        clash = tensors.keys() & part.keys()
        if clash:
            raise EncoderError(f"{path} repeats tensors already read: {sorted(clash)[:5]}")
        tensors.update(part)
    return tensors


def strip_prefixes(
    tensors: Mapping[str, torch.Tensor], prefixes: Iterable[str]
) -> dict[str, torch.Tensor]:
    """Rename ``prefix + key`` to ``key`` for the first matching prefix, in order."""
    ordered = tuple(prefixes)
    out: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        new = key
        for prefix in ordered:
            if key.startswith(prefix):
                new = key[len(prefix) :]
                break
        if new in out:
            raise EncoderError(f"two checkpoint tensors map to {new!r} after prefix stripping")
        out[new] = value
    return out


def _preview(keys: Iterable[str], limit: int = 8) -> str:
    ordered = sorted(keys)
    more = f" (+{len(ordered) - limit} more)" if len(ordered) > limit else ""
    return ", ".join(ordered[:limit]) + more


def load_exact(
    module: nn.Module,
    tensors: Mapping[str, torch.Tensor],
    *,
    source: str,
    ignorable: Iterable[str] = IGNORABLE_SUFFIXES,
) -> None:
    """Load ``tensors`` into ``module``, demanding a one-to-one key match.

    Parameters
    ----------
    module:
        The freshly built model (its random initial values must all be replaced).
    tensors:
        Checkpoint tensors already renamed to the module's state-dict names.
    source:
        What the tensors came from, for the error message.
    ignorable:
        Name suffixes of checkpoint entries that may be dropped (rebuildable buffers).

    Raises
    ------
    EncoderError
        When a checkpoint tensor is unused, a module parameter or buffer is not in the
        checkpoint, or a shape differs.
    """
    suffixes = tuple(ignorable)
    expected = module.state_dict()
    given = {k: v for k, v in tensors.items() if not (k not in expected and k.endswith(suffixes))}
    unused = given.keys() - expected.keys()
    missing = expected.keys() - given.keys()
    problems = []
    if unused:
        problems.append(f"unused checkpoint weights: {_preview(unused)}")
    if missing:
        problems.append(f"weights the model needs but the checkpoint lacks: {_preview(missing)}")
    shapes = [
        f"{k} {tuple(given[k].shape)} vs {tuple(expected[k].shape)}"
        for k in sorted(given.keys() & expected.keys())
        if given[k].shape != expected[k].shape
    ]
    if shapes:
        problems.append(f"shape mismatches (checkpoint vs model): {_preview(shapes)}")
    if problems:
        raise EncoderError(f"{source} does not match the model: " + "; ".join(problems))
    module.load_state_dict(given, strict=True)


def backbone_from_config(config: Any, *, with_pooler: bool) -> nn.Module:
    """A transformers base model (random weights) for ``config``, SDPA attention.

    SDPA is forced because the flash-attention path of some models (ModernBERT) unpads
    the batch and returns zeros for tokens outside the attention mask, which would
    change the vectors of non-attended query expansion tokens.
    """
    import inspect

    from transformers import AutoModel
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    config._attn_implementation = "sdpa"
    model: Any
    try:
        model_class: Any = MODEL_MAPPING[type(config)]
    except KeyError:
        model = cast(Any, AutoModel).from_config(config)
    else:
        if "add_pooling_layer" in inspect.signature(model_class.__init__).parameters:
            model = model_class(config, add_pooling_layer=with_pooler)
        else:
            model = model_class(config)
    if not isinstance(model, nn.Module):  # pragma: no cover - transformers always gives one
        raise EncoderError(f"transformers built no torch module for {type(config).__name__}")
    return model
