"""A BERT encoder and its tokenizer without importing transformers.

The default model (MiniLM-L6, a 6-layer BERT) is what every cold ``latestore search``
loads. Through transformers that costs 3-4 s of CPU before the first query, nearly all
of it importing transformers' modelling and auto-class machinery, not running the
model. This module holds the same computation in plain torch (the checkpoint's own
tensor names, post-LayerNorm BERT, exact-erf GELU) and the checkpoint's own
``tokenizer.json`` through the ``tokenizers`` library, which transformers' fast
tokenizers wrap. tests/encoders/test_bert_lite.py checks both against transformers:
the same token ids, hidden states within float32 rounding.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from latestore.errors import EncoderError

__all__ = ["LiteBert", "LiteTokenizer"]


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
        config = _read(model_dir / "tokenizer_config.json")
        special = _read(model_dir / "special_tokens_map.json")
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
            return _Batch(
                input_ids=torch.tensor(ids, dtype=torch.long),
                attention_mask=torch.tensor(masks, dtype=torch.long),
            )
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


class _Batch(dict[str, torch.Tensor]):
    """A dict of tensors with ``.to(device)``, as transformers' BatchEncoding has."""

    def __init__(self, **tensors: torch.Tensor) -> None:
        super().__init__(tensors)

    def to(self, device: str | torch.device) -> _Batch:
        return _Batch(**{k: v.to(device) for k, v in self.items()})


@dataclass
class _Output:
    last_hidden_state: torch.Tensor


@dataclass(frozen=True)
class _Config:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    vocab_size: int
    layer_norm_eps: float


class _Layer(nn.Module):
    def __init__(self, config: _Config) -> None:
        super().__init__()
        hidden, inner = config.hidden_size, config.intermediate_size
        self.heads = config.num_attention_heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attention_out = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.intermediate = nn.Linear(hidden, inner)
        self.output = nn.Linear(inner, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        head = hidden // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, head).transpose(1, 2)

        scores = split(self.query(x)) @ split(self.key(x)).transpose(-1, -2) / math.sqrt(head)
        weights = torch.softmax(scores + bias, dim=-1)
        context = (weights @ split(self.value(x))).transpose(1, 2).reshape(batch, length, hidden)
        x = self.attention_norm(x + self.attention_out(context))
        inner = nn.functional.gelu(self.intermediate(x))  # exact erf GELU, as BERT's "gelu"
        return self.output_norm(x + self.output(inner))  # type: ignore[no-any-return]


# Our parameter names -> the checkpoint's, per layer.
_LAYER_NAMES = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attention_out": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "intermediate": "intermediate.dense",
    "output": "output.dense",
    "output_norm": "output.LayerNorm",
}


class LiteBert(nn.Module):
    """BERT's encoder stack (no pooler): token ids in, last hidden states out."""

    def __init__(self, config: _Config) -> None:
        super().__init__()
        self.config = config
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.embedding_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(_Layer(config) for _ in range(config.num_hidden_layers))

    @classmethod
    def load(cls, model_dir: Path) -> LiteBert:
        """The BERT in ``model_dir`` (``config.json`` + ``model.safetensors``)."""
        from safetensors.torch import load_file

        raw = _read(model_dir / "config.json")
        if raw.get("model_type") != "bert" or raw.get("hidden_act", "gelu") != "gelu":
            raise EncoderError(f"{model_dir} is not a BERT with GELU: {raw.get('model_type')}")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise EncoderError(f"{model_dir}: only absolute position embeddings are supported")
        fields = _Config.__dataclass_fields__
        config = _Config(**{name: raw[name] for name in fields if name != "layer_norm_eps"},
                         layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)))  # fmt: skip
        tensors = load_file(str(model_dir / "model.safetensors"))
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in tensors else ""
        model = cls(config)
        state: dict[str, torch.Tensor] = {}
        for ours, theirs in (
            ("word_embeddings", "embeddings.word_embeddings"),
            ("position_embeddings", "embeddings.position_embeddings"),
            ("token_type_embeddings", "embeddings.token_type_embeddings"),
            ("embedding_norm", "embeddings.LayerNorm"),
        ):
            for leaf in ("weight", "bias"):
                if f"{prefix}{theirs}.{leaf}" in tensors:
                    state[f"{ours}.{leaf}"] = tensors[f"{prefix}{theirs}.{leaf}"]
        for i in range(config.num_hidden_layers):
            for ours, theirs in _LAYER_NAMES.items():
                for leaf in ("weight", "bias"):
                    name = f"{prefix}encoder.layer.{i}.{theirs}.{leaf}"
                    state[f"layers.{i}.{ours}.{leaf}"] = tensors[name]
        missing, _ = model.load_state_dict(state, strict=False)
        if missing:
            raise EncoderError(f"{model_dir} lacks BERT weights: {missing[:5]}")
        return model.eval()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> _Output:
        length = input_ids.shape[1]
        positions = torch.arange(length, device=input_ids.device)
        types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)[None]
            + self.token_type_embeddings(types)
        )
        x = self.embedding_norm(x)
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        # Padding gets the dtype's lowest value before the softmax, as in transformers.
        bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, bias)
        return _Output(last_hidden_state=x)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}
