"""A BERT encoder without importing transformers (its tokenizer: encoders/text/bert_numpy.py).

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

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

# The tokenizer and the config reader need no torch (a query can be read without it).
from latestore.encoders.text.bert_numpy import (
    EMBEDDING_NAMES,
    LAYER_NAMES,
    BertConfig,
    LiteTokenizer,
    read_bert_config,
    weight_prefix,
)
from latestore.errors import EncoderError

__all__ = ["LiteBert", "LiteTokenizer", "torch_batch"]


class _Batch(dict[str, torch.Tensor]):
    """A dict of tensors with ``.to(device)``, as transformers' BatchEncoding has."""

    def __init__(self, **tensors: torch.Tensor) -> None:
        super().__init__(tensors)

    def to(self, device: str | torch.device) -> _Batch:
        return _Batch(**{k: v.to(device) for k, v in self.items()})


def torch_batch(ids: list[list[int]], masks: list[list[int]]) -> _Batch:
    """Padded ids and masks as LiteTokenizer returns them under ``return_tensors="pt"``."""
    return _Batch(
        input_ids=torch.tensor(ids, dtype=torch.long),
        attention_mask=torch.tensor(masks, dtype=torch.long),
    )


@dataclass
class _Output:
    last_hidden_state: torch.Tensor


class _Layer(nn.Module):
    def __init__(self, config: BertConfig) -> None:
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


class LiteBert(nn.Module):
    """BERT's encoder stack (no pooler): token ids in, last hidden states out."""

    def __init__(self, config: BertConfig) -> None:
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

        config = read_bert_config(model_dir)
        tensors = load_file(str(model_dir / "model.safetensors"))
        prefix = weight_prefix(tensors)
        model = cls(config)
        state: dict[str, torch.Tensor] = {}
        for ours, theirs in EMBEDDING_NAMES.items():
            for leaf in ("weight", "bias"):
                if f"{prefix}{theirs}.{leaf}" in tensors:
                    state[f"{ours}.{leaf}"] = tensors[f"{prefix}{theirs}.{leaf}"]
        for i in range(config.num_hidden_layers):
            for ours, theirs in LAYER_NAMES.items():
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
