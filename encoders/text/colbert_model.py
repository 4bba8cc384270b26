"""The ColBERT text encoder shared by every ColBERT checkpoint family.

The families (HF_ColBERT, PyLate/sentence-transformers, Jina, bge-m3) differ in how
their files are laid out and named; once loaded they all run the same recipe:

* a marker token (``[unused0]``, ``[Q] ``, ``[QueryMarker]``, ...) inserted right after
  the first special token, as ColBERT and PyLate do;
* queries padded with the mask token to a fixed length ("query augmentation"), the
  expansion tokens attended to or not as the checkpoint was trained;
* documents stripped of punctuation tokens (the skiplist) and of padding, truncated to
  ``document_length`` with ``windows=False``, else read in overlapping windows of it (each
  window with its own special tokens and marker; :mod:`latestore.encoders.windows`);
* a linear projection, then L2 normalisation.
"""

from __future__ import annotations

import copy
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from latestore.encoders.base import (
    TokenVectors,
    hash_files,
    length_sorted_batches,
    revised_fingerprint,
)
from latestore.encoders.device import pick_device, pick_dtype
from latestore.encoders.text.pages import WindowedTextPages
from latestore.encoders.windows import (
    WindowSettings,
    special_template,
)
from latestore.errors import EncoderError

__all__ = ["ColBERTEncoder", "ColBERTNet", "Projection", "PromptSettings", "resolve_dtype"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "torch.nn.modules.linear.Identity": nn.Identity,
    "torch.nn.modules.activation.Tanh": nn.Tanh,
}


@dataclass(frozen=True)
class PromptSettings:
    """How one checkpoint wants its queries and documents tokenised.

    Parameters
    ----------
    query_marker, document_marker:
        Token inserted after the first special token, or ``None`` for no marker.
    query_length, document_length:
        Token budgets, markers included.
    query_expansion:
        Pad queries with the mask token up to ``query_length`` and keep every position.
    attend_to_expansion:
        Whether the expansion tokens are inside the attention mask.
    skiplist:
        Strings whose tokens are dropped from document vectors.
    drop_first_token:
        Drop the first position (bge-m3 keeps no vector for ``<s>``).
    """

    query_marker: str | None = "[unused0]"
    document_marker: str | None = "[unused1]"
    query_length: int = 32
    document_length: int = 180
    query_expansion: bool = True
    attend_to_expansion: bool = False
    skiplist: tuple[str, ...] = tuple(string.punctuation)
    drop_first_token: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Projection(nn.Module):
    """The ColBERT head: one linear layer, optionally followed by an activation."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = False,
        activation: str | None = None,
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        if activation is None:
            self.activation: nn.Module = nn.Identity()
        elif activation in _ACTIVATIONS:
            self.activation = _ACTIVATIONS[activation]()
        else:
            raise EncoderError(
                f"projection activation {activation!r} is not supported "
                f"(known: {', '.join(sorted(_ACTIVATIONS))})"
            )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.activation(self.linear(hidden))
        return out


class ColBERTNet(nn.Module):
    """Backbone plus projection; its state dict names are ``backbone.*``, ``projection.*``."""

    def __init__(self, backbone: nn.Module, projection: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection = projection

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out if isinstance(out, torch.Tensor) else out.last_hidden_state
        projected: torch.Tensor = self.projection(hidden)
        return projected


# The one dtype policy of every encoder, under the name this module always exported.
resolve_dtype = pick_dtype


class ColBERTEncoder(WindowedTextPages):
    """A loaded ColBERT text model; satisfies :class:`latestore.encoders.Encoder`.

    Built by the family modules; use :func:`latestore.encoders.registry.load_encoder`.

    Parameters
    ----------
    net:
        Backbone and projection, weights already loaded.
    tokenizer:
        The checkpoint's transformers tokenizer.
    prompts:
        Markers, lengths, expansion and skiplist as the checkpoint defines them.
    family, spec:
        Family name (part of the fingerprint) and the directory it was loaded from.
    files:
        Every weight file read, hashed into the fingerprint.
    device, dtype:
        CUDA when present (bf16, else fp16), else CPU in fp32, unless given.
    windows:
        How pages longer than ``document_length`` are read (default: in windows).
    """

    def __init__(
        self,
        *,
        net: ColBERTNet,
        tokenizer: Any,
        prompts: PromptSettings,
        family: str,
        spec: str,
        files: Sequence[Path],
        device: str | None = None,
        dtype: str | torch.dtype | None = None,
        batch_size: int = 32,
        name: str | None = None,
        windows: WindowSettings | None = None,
    ) -> None:
        self.prompts = prompts
        self.family = family
        self.spec = spec
        self.batch_size = batch_size
        self.device: str = pick_device(device)
        torch_dtype = resolve_dtype(self.device, dtype)
        self.dtype: str = str(torch_dtype).removeprefix("torch.")
        self.net = net.to(device=self.device, dtype=torch_dtype).eval()
        self.name: str = name or f"{family}:{Path(spec).name}"
        linear = getattr(net.projection, "linear", None)
        if not isinstance(linear, nn.Linear):
            raise EncoderError("the ColBERT projection has no linear layer")
        self.dim: int = int(linear.out_features)
        self.tokenizer = tokenizer
        # Right padding keeps the first position the special token the marker follows.
        self.tokenizer.padding_side = "right"
        self._query_marker = self._marker_id(prompts.query_marker)
        self._document_marker = self._marker_id(prompts.document_marker)
        self._mask_id = self._required_id("mask_token_id")
        self._pad_id = self._required_id("pad_token_id")
        self._skip_ids = torch.tensor(sorted(self._skiplist_ids()), dtype=torch.long)
        self._skip_set = set(self._skip_ids.tolist())
        # Revision 2: the skiplist rule changed (see _skiplist_ids_revision_1); only the
        # checkpoints whose skipped tokens it changed get the new revision.
        self._revision = 1 if self._skiplist_ids_revision_1() == self._skip_set else 2
        self.revision_note = (
            "the skiplist now follows PyLate: sentencepiece word-start symbols such as '▁(' "
            "keep their vectors"
            if self._revision == 2
            else ""
        )
        self._prefix, self._suffix = special_template(tokenizer)
        marker = 1 if self._document_marker is not None else 0
        self._span = prompts.document_length - marker - len(self._prefix) - len(self._suffix)
        self._weights_hash = hash_files(list(files))
        self._set_windowing(windows or WindowSettings.from_options({}))

    def _set_windowing(self, settings: WindowSettings) -> None:
        self.windowing = settings.resolved(self._span)
        parts: dict[str, Any] = {
            "family": self.family,
            "weights": self._weights_hash,
            "dim": self.dim,
            "prompts": self.prompts.as_dict(),
            "pooling": None,
        }
        # Windows off keeps the fingerprint stores had before windows existed.
        if (windows := self.windowing.fingerprint_part()) is not None:
            parts["windows"] = windows
        self.fingerprint, self.supersedes = revised_fingerprint(parts, self._revision)

    def with_windowing(self, settings: WindowSettings) -> ColBERTEncoder:
        """The same model (shared, not copied) with other window settings."""
        other = copy.copy(self)
        other._set_windowing(settings)
        return other

    # -- tokenisation -----------------------------------------------------------------

    def _required_id(self, attribute: str) -> int:
        value = getattr(self.tokenizer, attribute, None)
        if value is None:
            raise EncoderError(
                f"{self.name}: the tokenizer defines no {attribute.removesuffix('_id')}"
            )
        return int(value)

    def _marker_id(self, marker: str | None) -> int | None:
        if marker is None:
            return None
        token_id = self.tokenizer.convert_tokens_to_ids(marker)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise EncoderError(f"{self.name}: marker {marker!r} is not a token of the tokenizer")
        return int(token_id)

    def _skiplist_ids(self) -> set[int]:
        # PyLate, the reference, skips the vocabulary entry spelled like each symbol and
        # nothing else: sentencepiece's word-start forms ("▁(") keep their vectors. A
        # symbol the vocabulary lacks converts to the unknown token there, so unknown
        # tokens are skipped too (never the case for BERT's or XLM-R's punctuation).
        ids = (self.tokenizer.convert_tokens_to_ids(symbol) for symbol in self.prompts.skiplist)
        return {int(token_id) for token_id in ids if token_id is not None}

    def _skiplist_ids_revision_1(self) -> set[int]:
        """The skiplist before revision 2 (latestore up to 2026-11-27): each symbol's own
        vocabulary entry unless unknown, and the first piece of the symbol's encoding when
        it is the symbol with a word-start mark ("▁(" in sentencepiece vocabularies).
        Kept only to tell which stored checkpoints the change affected."""
        unk = self.tokenizer.unk_token_id
        ids: set[int] = set()
        for symbol in self.prompts.skiplist:
            direct = self.tokenizer.convert_tokens_to_ids(symbol)
            if direct is not None and direct != unk:
                ids.add(int(direct))
            encoded = self.tokenizer.encode(symbol, add_special_tokens=False)
            if encoded:
                piece = self.tokenizer.convert_ids_to_tokens(encoded[0])
                if isinstance(piece, str) and piece.lstrip("▁Ġ ") == symbol:
                    ids.add(int(encoded[0]))
        return ids

    def _tokenize(
        self, texts: list[str], is_query: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """input ids, attention mask, and which positions become vectors."""
        prompts = self.prompts
        marker = self._query_marker if is_query else self._document_marker
        length = prompts.query_length if is_query else prompts.document_length
        budget = length - (1 if marker is not None else 0)
        batch = self.tokenizer(
            texts, truncation=True, max_length=budget, padding=True, return_tensors="pt"
        )
        ids = batch["input_ids"].long()
        attention = batch["attention_mask"].long()
        rows = ids.shape[0]
        if marker is not None:
            ids = torch.cat([ids[:, :1], torch.full((rows, 1), marker), ids[:, 1:]], dim=1)
            attention = torch.cat(
                [attention[:, :1], torch.ones(rows, 1).long(), attention[:, 1:]], 1
            )
        if is_query and prompts.query_expansion:
            missing = length - ids.shape[1]
            if missing > 0:
                ids = torch.cat([ids, torch.full((rows, missing), self._pad_id)], dim=1)
                attention = torch.cat([attention, torch.zeros(rows, missing).long()], dim=1)
            expansion = attention == 0
            ids[expansion] = self._mask_id
            if prompts.attend_to_expansion:
                attention[expansion] = 1
            keep = torch.ones_like(ids, dtype=torch.bool)
        else:
            keep = attention.bool()
            if not is_query and self._skip_ids.numel():
                keep &= ~torch.isin(ids, self._skip_ids)
        if prompts.drop_first_token:
            keep[:, 0] = False
        return ids, attention, keep

    # -- encoding ---------------------------------------------------------------------

    def encode_queries(self, queries: Sequence[str]) -> list[TokenVectors]:
        """One ``(n_tokens, dim)`` array per query; ``query_length`` rows with expansion."""
        for query in queries:
            if not isinstance(query, str):
                raise EncoderError(
                    f"{self.name}: queries must be strings, got {type(query).__name__}"
                )
        return self._encode(list(queries), is_query=True)

    def _window(self, ids: list[int], own_start: int, own_end: int) -> tuple[list[int], list[bool]]:
        """One document window as :meth:`_tokenize` builds a document: the marker after
        the first special token, punctuation and (bge-m3) the first position not kept."""
        head, tail = self._prefix, self._suffix
        marker = [] if self._document_marker is None else [self._document_marker]
        model_ids = [*head[:1], *marker, *head[1:], *ids, *tail]
        keep = (
            [True] * (len(head) + len(marker))
            + [own_start <= j < own_end for j in range(len(ids))]
            + [True] * len(tail)
        )
        keep = [k and t not in self._skip_set for k, t in zip(keep, model_ids, strict=True)]
        if self.prompts.drop_first_token:
            keep[0] = False
        return model_ids, keep

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            projected = self.net(input_ids, attention_mask)
            return nn.functional.normalize(projected.float(), dim=-1)

    @torch.inference_mode()
    def _encode(self, texts: list[str], *, is_query: bool) -> list[TokenVectors]:
        out: list[TokenVectors | None] = [None] * len(texts)
        for chunk in length_sorted_batches(texts, self.batch_size):
            ids, attention, keep = self._tokenize([texts[i] for i in chunk], is_query)
            projected = self.net(ids.to(self.device), attention.to(self.device))
            vectors = nn.functional.normalize(projected.float(), dim=-1).cpu()
            for row, index in enumerate(chunk):
                selected = vectors[row][keep[row]].numpy()
                out[index] = np.ascontiguousarray(selected, dtype=np.float32)
        return [v for v in out if v is not None]
