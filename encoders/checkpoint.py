"""Reading a checkpoint directory: its config, its weight files and their tensors.

One reader for every family, so that a sharded checkpoint (``*.index.json``) loads the
same way whether it holds a ColBERT, a ColPali or a ColQwen model, and a stray extra
``*.safetensors`` file beside the real ones is never mixed in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from latestore.encoders.base import hash_files
from latestore.errors import EncoderError

__all__ = [
    "architectures",
    "read_config",
    "read_json",
    "read_json_value",
    "read_tensors",
    "weight_files",
    "weights_digest",
]

_SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
_SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def read_json_value(path: Path) -> Any:
    """The JSON value in ``path``; ``None`` when the file does not exist."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EncoderError(f"cannot read {path}: {exc}") from exc


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``{}`` when the file does not exist."""
    data = read_json_value(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise EncoderError(f"{path} does not hold a JSON object")
    return data


def read_config(model_dir: Path) -> dict[str, Any]:
    """``config.json`` of a model directory, which must exist."""
    path = model_dir / "config.json"
    if not path.is_file():
        raise EncoderError(f"{model_dir} has no config.json")
    return read_json(path)


def architectures(config: dict[str, Any]) -> list[str]:
    return [str(a) for a in config.get("architectures") or []]


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a transformers folder, in load order.

    safetensors wins over ``.bin`` as in transformers; sharded checkpoints are read
    through their index so that a stray extra file is never mixed in.

    Raises
    ------
    EncoderError
        When the folder holds no weights, or its index names absent shards.
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


def weights_digest(model_dir: Path) -> str:
    return hash_files(weight_files(model_dir))


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
