"""Jina's XLM-RoBERTa backbone (``xlm-roberta-flash-implementation``) in plain torch.

jinaai/jina-colbert-v2 ships its backbone as remote code: a post-norm BERT block with
rotary position embeddings and fused ``mixer.Wqkv`` projections. transformers has no
class with these weight names and no rotary XLM-RoBERTa, and latestore never runs
remote code, so the architecture is re-implemented here with the *same parameter
names* (``emb_ln``, ``encoder.layers.N.mixer.Wqkv``, ``norm1``, ``mlp.fc1``, ...) so
that the checkpoint loads key for key. Flash attention is replaced by SDPA, which
computes the same function. The vectors equal those of transformers' port of this
backbone (``JinaEmbeddingsV3Model``) on checkpoints it saved
(``tests/encoders/test_colbert_jina_reference.py``, ``tests/oracle/test_jina_oracle.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from latestore.errors import EncoderError

__all__ = ["JinaXLMRobertaConfig", "JinaXLMRobertaModel", "is_jina_flash_checkpoint"]

_TANH_GELUS = ("gelu_new", "gelu_fast", "gelu_pytorch_tanh")


def is_jina_flash_checkpoint(keys: set[str]) -> bool:
    """Whether backbone tensor names follow the flash implementation's naming."""
    return any(".mixer.Wqkv." in key for key in keys)


@dataclass(frozen=True)
class JinaXLMRobertaConfig:
    """The fields of ``XLMRobertaFlashConfig`` the forward pass depends on."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5
    type_vocab_size: int = 1
    pad_token_id: int = 1
    position_embedding_type: str = "rotary"
    rotary_emb_base: float = 10000.0
    max_position_embeddings: int = 8194

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> JinaXLMRobertaConfig:
        """The forward-pass fields of a config.json; rotary variants it cannot run are refused.

        Raises
        ------
        EncoderError
            On a missing size field, non-rotary positions, an unknown activation, or a
            rotary setting the remote code honours but this module does not compute.
        """
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in config.items() if k in known}
        theta = _rope_theta(config)
        if theta is not None:
            values["rotary_emb_base"] = theta
        try:
            made = cls(**values)
        except TypeError as exc:
            raise EncoderError(
                f"config.json lacks a field of the Jina XLM-RoBERTa config: {exc}"
            ) from exc
        if made.position_embedding_type != "rotary":
            raise EncoderError(
                "Jina flash XLM-RoBERTa checkpoints are supported with rotary positions only, "
                f"not {made.position_embedding_type!r}"
            )
        if made.hidden_act not in ("gelu", *_TANH_GELUS):
            raise EncoderError(f"unsupported activation {made.hidden_act!r} in a Jina checkpoint")
        _refuse_rotary_variants(config, made.hidden_size // made.num_attention_heads)
        return made


def _rope_theta(config: dict[str, Any]) -> float | None:
    """The rotary base of a config written by transformers' ``JinaEmbeddingsV3Config``.

    That port saves the base as ``rope_parameters.rope_theta`` (default 20000) and no
    ``rotary_emb_base``; reading only the remote code's key would fall back to 10000.
    """
    rope = config.get("rope_parameters")
    if rope is None:
        return 20000.0 if config.get("model_type") == "jina_embeddings_v3" else None
    if not isinstance(rope, dict):
        raise EncoderError(f"rope_parameters must be a mapping, not {type(rope).__name__}")
    if rope.get("rope_type", "default") != "default":
        raise EncoderError(
            f"rope_type {rope.get('rope_type')!r} is not supported for Jina checkpoints "
            "(only 'default' rotary embeddings)"
        )
    theta = rope.get("rope_theta", 20000.0)
    if not isinstance(theta, int | float) or isinstance(theta, bool):
        raise EncoderError(f"rope_parameters.rope_theta must be a number, not {theta!r}")
    return float(theta)


def _refuse_rotary_variants(config: dict[str, Any], head_dim: int) -> None:
    """The remote code reads three more rotary keys; only their defaults are computed here.

    ``rotary_emb_dim`` (rotate only part of each head), ``rotary_emb_interleaved``
    (GPT-J pairing instead of halves) and ``rotary_emb_scale_base`` (xPos scaling) would
    each give other vectors, so a checkpoint that sets them is refused, not misread.
    """
    dim = config.get("rotary_emb_dim")
    if dim is not None and dim != head_dim:
        raise EncoderError(
            f"rotary_emb_dim {dim} differs from the head size {head_dim}: partial rotary "
            "embeddings are not supported for Jina checkpoints"
        )
    if config.get("rotary_emb_interleaved"):
        raise EncoderError("interleaved rotary embeddings are not supported for Jina checkpoints")
    if config.get("rotary_emb_scale_base") is not None:
        raise EncoderError("xPos-scaled rotary embeddings are not supported for Jina checkpoints")


class _Embeddings(nn.Module):
    def __init__(self, config: JinaXLMRobertaConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.token_type_embeddings = (
            nn.Embedding(config.type_vocab_size, config.hidden_size)
            if config.type_vocab_size > 0
            else None
        )

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden: torch.Tensor = self.word_embeddings(input_ids)
        if self.token_type_embeddings is not None:
            # All-zero token types, as the model is always called with one segment.
            hidden = hidden + self.token_type_embeddings.weight[0]
        return hidden


class _Rotary(nn.Module):
    """Non-interleaved (GPT-NeoX style) rotary embedding over the whole head."""

    def __init__(self, head_dim: int, base: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        length = q.shape[-2]
        inv_freq: torch.Tensor = self.inv_freq  # type: ignore[assignment]
        positions = torch.arange(length, device=q.device, dtype=torch.float32)
        angles = torch.outer(positions, inv_freq)
        cos = torch.cat([angles.cos(), angles.cos()], dim=-1).to(q.dtype)
        sin = torch.cat([angles.sin(), angles.sin()], dim=-1).to(q.dtype)
        return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


class _Attention(nn.Module):
    def __init__(self, config: JinaXLMRobertaConfig) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.Wqkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.rotary_emb = _Rotary(self.head_dim, config.rotary_emb_base)

    def forward(self, hidden: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        batch, length, width = hidden.shape
        # The fused projection is laid out (three, heads, head_dim) along its output.
        qkv = self.Wqkv(hidden).view(batch, length, 3, self.heads, self.head_dim)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
        q, k = self.rotary_emb(q, k)
        attended = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        out: torch.Tensor = self.out_proj(attended.transpose(1, 2).reshape(batch, length, width))
        return out


class _Mlp(nn.Module):
    def __init__(self, config: JinaXLMRobertaConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.approximate = "tanh" if config.hidden_act in _TANH_GELUS else "none"

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc2(
            nn.functional.gelu(self.fc1(hidden), approximate=self.approximate)
        )
        return out


class _Block(nn.Module):
    """Post-norm block, as BERT: norm(x + attn(x)), then norm(h + mlp(h))."""

    def __init__(self, config: JinaXLMRobertaConfig) -> None:
        super().__init__()
        self.mixer = _Attention(config)
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = _Mlp(config)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.norm1(hidden + self.mixer(hidden, key_mask))
        out: torch.Tensor = self.norm2(hidden + self.mlp(hidden))
        return out


class _Encoder(nn.Module):
    def __init__(self, config: JinaXLMRobertaConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_Block(config) for _ in range(config.num_hidden_layers))


class _Pooler(nn.Module):
    """Kept only so that a checkpoint's pooler weights are consumed, never silently dropped."""

    def __init__(self, config: JinaXLMRobertaConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)


class JinaXLMRobertaModel(nn.Module):
    """Returns the last hidden state ``(batch, length, hidden)``."""

    def __init__(self, config: JinaXLMRobertaConfig, *, with_pooler: bool = False) -> None:
        super().__init__()
        self.embeddings = _Embeddings(config)
        self.emb_ln = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = _Encoder(config)
        self.pooler = _Pooler(config) if with_pooler else None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.emb_ln(self.embeddings(input_ids))
        key_mask = attention_mask.bool()[:, None, None, :]
        for layer in self.encoder.layers:
            hidden = layer(hidden, key_mask)
        out: torch.Tensor = hidden
        return out
