"""Reading checkpoint files and loading them with no weight left behind.

transformers' ``from_pretrained`` only *warns* about unused or missing weights and then
initialises the missing ones at random. For a retrieval store that is the worst
failure mode: the vectors look fine and are silently meaningless. Every family here
therefore reads the tensors itself and loads them with :func:`load_exact`, which
refuses any key-set difference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import torch
from torch import nn

from latestore.encoders.checkpoint import read_json, read_tensors, weight_files
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


def renamed(
    tensors: Mapping[str, torch.Tensor], rename: Callable[[str], str]
) -> dict[str, torch.Tensor]:
    """``tensors`` under ``rename(key)``; two keys landing on one name is an error."""
    out: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        new = rename(key)
        if new in out:
            raise EncoderError(f"two checkpoint tensors map to {new!r} after renaming")
        out[new] = value
    return out


def strip_prefixes(
    tensors: Mapping[str, torch.Tensor], prefixes: Iterable[str]
) -> dict[str, torch.Tensor]:
    """Rename ``prefix + key`` to ``key`` for the first matching prefix, in order."""
    ordered = tuple(prefixes)

    def strip(key: str) -> str:
        prefix = next((p for p in ordered if key.startswith(p)), "")
        return key[len(prefix) :]

    return renamed(tensors, strip)


# TF-era LayerNorm names, still written by transformers 5.3's save_pretrained for BERT
# (and found in original BERT checkpoints); transformers renames them at load.
_LEGACY_SUFFIXES = ((".gamma", ".weight"), (".beta", ".bias"))


def legacy_names_renamed(
    tensors: Mapping[str, torch.Tensor], expected: Iterable[str]
) -> dict[str, torch.Tensor]:
    """``LayerNorm.gamma``/``.beta`` renamed to ``.weight``/``.bias`` where the model wants."""
    wanted = set(expected)

    def modernise(key: str) -> str:
        if key in wanted:
            return key
        for old, modern in _LEGACY_SUFFIXES:
            if key.endswith(old) and key[: -len(old)] + modern in wanted:
                return key[: -len(old)] + modern
        return key

    return renamed(tensors, modernise)


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
    tensors = legacy_names_renamed(tensors, expected.keys())
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
