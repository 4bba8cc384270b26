"""A BERT checkpoint without torch: its config, its tokenizer, and a numpy forward pass.

A cold ``latestore search`` on the default model (MiniLM-L6, a 6-layer BERT) spent
most of its CPU importing torch (docs/cold-start.md), to encode a query of a few tokens.
:class:`NumpyBert` runs the same computation as :class:`~latestore.encoders.text.bert_lite.
LiteBert` (post-LayerNorm BERT, exact-erf GELU, the checkpoint's own weights) in numpy,
float32 like the torch path; MiniLM encodes small query batches with it while torch is
not loaded. The two agree to float32 rounding (tests/encoders/test_bert_numpy.py), not
bit for bit: their matrix products are different BLAS kernels.

:class:`LiteTokenizer` (the checkpoint's ``tokenizer.json`` through the ``tokenizers``
library) lives here too, so that reading a query needs no torch either; it builds torch
tensors only when asked to (``return_tensors="pt"``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from latestore.errors import EncoderError

__all__ = ["BertConfig", "LiteTokenizer", "NumpyBert", "read_bert_config"]

Float32 = npt.NDArray[np.float32]


class LiteTokenizer:
    """The subset of a transformers fast tokenizer's call that latestore uses.

    ``tokenizer(texts, add_special_tokens=..., truncation=..., max_length=...,
    padding=..., return_tensors="pt")`` with the checkpoint's own ``tokenizer.json``;
    the file's stored truncation and padding are switched off, as transformers does,
    and applied per call only when asked.
    """

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        path = model_dir / "tokenizer.json"
        if not path.is_file():
            raise EncoderError(f"{model_dir} has no tokenizer.json")
        self._tokenizer = Tokenizer.from_file(str(path))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        config = read_json(model_dir / "tokenizer_config.json")
        special = read_json(model_dir / "special_tokens_map.json")
        for role in ("pad", "cls", "sep", "mask", "unk"):
            token = special.get(f"{role}_token", config.get(f"{role}_token"))
            if isinstance(token, dict):
                token = token.get("content")
            token_id = self._tokenizer.token_to_id(token) if isinstance(token, str) else None
            setattr(self, f"{role}_token_id", token_id)
        self.pad_token_id: int | None
        if self.pad_token_id is None:
            raise EncoderError(f"the tokenizer in {model_dir} names no padding token")
        # As transformers' tokenizers name them: explanations tell these from words.
        self.all_special_tokens: list[str] = [
            str(self._tokenizer.id_to_token(i))
            for role in ("pad", "cls", "sep", "mask", "unk")
            if (i := getattr(self, f"{role}_token_id")) is not None
        ]

    # A fast (Rust) tokenizer: character offsets are known (serve's match positions).
    is_fast = True

    @property
    def backend_tokenizer(self) -> Any:
        """The Rust tokenizer, named as transformers' fast tokenizers name it (the
        explanations read its model's kind: WordPiece pieces continue a word)."""
        return self._tokenizer

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [str(self._tokenizer.id_to_token(int(i))) for i in ids]

    def __len__(self) -> int:
        return int(self._tokenizer.get_vocab_size(with_added_tokens=True))

    def __call__(
        self,
        text: str | list[str],
        *,
        add_special_tokens: bool = True,
        truncation: bool = False,
        max_length: int | None = None,
        padding: bool = False,
        return_tensors: str | None = None,
        return_offsets_mapping: bool = False,
        verbose: bool = True,
    ) -> Any:  # a dict of lists, or of tensors (with .to) under return_tensors="pt"
        single = isinstance(text, str)
        texts = [text] if isinstance(text, str) else list(text)
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=add_special_tokens)
        ids = [list(e.ids) for e in encodings]
        if truncation and max_length is not None:
            ids = [self._truncate(row, max_length, add_special_tokens) for row in ids]
        masks = [[1] * len(row) for row in ids]
        if padding or return_tensors == "pt":
            width = max((len(row) for row in ids), default=0)
            pad = int(self.pad_token_id or 0)
            masks = [m + [0] * (width - len(m)) for m in masks]
            ids = [row + [pad] * (width - len(row)) for row in ids]
        if return_tensors == "pt":
            from latestore.encoders.text.bert_lite import torch_batch

            return torch_batch(ids, masks)
        out: dict[str, Any] = {"input_ids": ids, "attention_mask": masks}
        if return_offsets_mapping:
            # Offsets of the ids kept (truncation cuts the end; padding is not asked here).
            out["offset_mapping"] = [
                [tuple(o) for o in e.offsets[: len(row)]]
                for e, row in zip(encodings, ids, strict=True)
            ]
        return {k: v[0] for k, v in out.items()} if single else out

    def _truncate(self, ids: list[int], max_length: int, specials: bool) -> list[int]:
        """Cut the text, not its closing special token, to ``max_length`` ids in all."""
        if len(ids) <= max_length:
            return ids
        if not specials:
            return ids[:max_length]
        tail = ids[-1:] if ids[-1] == self.sep_token_id else []  # type: ignore[attr-defined]
        return ids[: max_length - len(tail)] + tail


@dataclass(frozen=True)
class BertConfig:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    vocab_size: int
    layer_norm_eps: float


def read_bert_config(model_dir: Path) -> BertConfig:
    """``config.json`` of a BERT with GELU and absolute positions; else EncoderError."""
    raw = read_json(model_dir / "config.json")
    if raw.get("model_type") != "bert" or raw.get("hidden_act", "gelu") != "gelu":
        raise EncoderError(f"{model_dir} is not a BERT with GELU: {raw.get('model_type')}")
    if raw.get("position_embedding_type", "absolute") != "absolute":
        raise EncoderError(f"{model_dir}: only absolute position embeddings are supported")
    fields = BertConfig.__dataclass_fields__
    return BertConfig(**{name: raw[name] for name in fields if name != "layer_norm_eps"},
                      layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)))  # fmt: skip


# Our parameter names -> the checkpoint's, per layer.
LAYER_NAMES = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attention_out": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "intermediate": "intermediate.dense",
    "output": "output.dense",
    "output_norm": "output.LayerNorm",
}
EMBEDDING_NAMES = {
    "word_embeddings": "embeddings.word_embeddings",
    "position_embeddings": "embeddings.position_embeddings",
    "token_type_embeddings": "embeddings.token_type_embeddings",
    "embedding_norm": "embeddings.LayerNorm",
}


def weight_prefix(names: Any) -> str:
    """``"bert."`` when the checkpoint nests the encoder under it (a BertModel inside a
    task model), else ``""``."""
    return "bert." if "bert.embeddings.word_embeddings.weight" in names else ""


class NumpyBert:
    """BERT's encoder stack (no pooler) in numpy float32: token ids in, last hidden
    states out, the computation of LiteBert step for step."""

    def __init__(self, config: BertConfig, weights: dict[str, Float32]) -> None:
        self.config = config
        self._w = weights

    @classmethod
    def load(cls, model_dir: Path) -> NumpyBert:
        """The BERT in ``model_dir`` (``config.json`` + ``model.safetensors``)."""
        from safetensors.numpy import load_file

        config = read_bert_config(model_dir)
        tensors = load_file(str(model_dir / "model.safetensors"))
        prefix = weight_prefix(tensors)
        weights: dict[str, Float32] = {}
        try:
            for ours, theirs in EMBEDDING_NAMES.items():
                weights[f"{ours}.weight"] = tensors[f"{prefix}{theirs}.weight"]
            weights["embedding_norm.bias"] = tensors[f"{prefix}embeddings.LayerNorm.bias"]
            for i in range(config.num_hidden_layers):
                for ours, theirs in LAYER_NAMES.items():
                    for leaf in ("weight", "bias"):
                        array = tensors[f"{prefix}encoder.layer.{i}.{theirs}.{leaf}"]
                        if leaf == "weight" and not ours.endswith("norm"):
                            array = array.T  # x @ W.T, as nn.Linear computes
                        weights[f"{i}.{ours}.{leaf}"] = array
        except KeyError as exc:
            raise EncoderError(f"{model_dir} lacks BERT weights: {exc}") from exc
        # Transposed views, not copies: BLAS reads a transposed operand as it lies.
        return cls(config, {k: v.astype(np.float32, copy=False) for k, v in weights.items()})

    def __call__(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[Any]
    ) -> Float32:
        """``(batch, length, hidden)`` last hidden states; token type 0 throughout."""
        w, config = self._w, self.config
        length = input_ids.shape[1]
        x = (
            w["word_embeddings.weight"][input_ids]
            + w["position_embeddings.weight"][:length][None]
            + w["token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embedding_norm.weight"], w["embedding_norm.bias"], config)
        # Padding gets float32's lowest value before the softmax, as in transformers.
        bias = (1.0 - attention_mask[:, None, None, :].astype(np.float32)) * np.finfo(
            np.float32
        ).min
        for i in range(config.num_hidden_layers):
            x = self._layer(x, bias, f"{i}.")
        return x

    def _layer(self, x: Float32, bias: Float32, at: str) -> Float32:
        w, config = self._w, self.config
        batch, length, hidden = x.shape
        heads = config.num_attention_heads
        head = hidden // heads

        def linear(t: Float32, name: str) -> Float32:
            return t @ w[f"{at}{name}.weight"] + w[f"{at}{name}.bias"]

        def split(t: Float32) -> Float32:
            return t.reshape(batch, length, heads, head).transpose(0, 2, 1, 3)

        scores = split(linear(x, "query")) @ split(linear(x, "key")).transpose(0, 1, 3, 2)
        scores = scores / np.float32(math.sqrt(head)) + bias
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights = scores / scores.sum(axis=-1, keepdims=True)
        context = (weights @ split(linear(x, "value"))).transpose(0, 2, 1, 3)
        context = context.reshape(batch, length, hidden)
        x = _layer_norm(
            x + linear(context, "attention_out"),
            w[f"{at}attention_norm.weight"],
            w[f"{at}attention_norm.bias"],
            config,
        )
        inner = _gelu(linear(x, "intermediate"))
        return _layer_norm(
            x + linear(inner, "output"),
            w[f"{at}output_norm.weight"],
            w[f"{at}output_norm.bias"],
            config,
        )


def _layer_norm(x: Float32, weight: Float32, bias: Float32, config: BertConfig) -> Float32:
    mean = x.mean(axis=-1, keepdims=True, dtype=np.float64)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    normed = ((x - mean) / np.sqrt(var + config.layer_norm_eps)).astype(np.float32)
    out: Float32 = normed * weight + bias
    return out


_ERF = np.frompyfunc(math.erf, 1, 1)


def _gelu(x: Float32) -> Float32:
    """Exact GELU, x * (1 + erf(x / sqrt 2)) / 2, as BERT's "gelu" (torch's default).

    numpy has no erf; math.erf per element costs about 0.3 us, a few milliseconds for
    a query (this path only serves small query batches)."""
    wide = x.astype(np.float64)
    erf = np.asarray(_ERF(wide / math.sqrt(2.0)), dtype=np.float64)
    return (0.5 * wide * (1.0 + erf)).astype(np.float32)


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}
