"""``encode_pages`` written once for the text encoders that window long pages.

ColBERT models and MiniLM read a page the same way: its text, cut into windows of
``_span`` tokens when windowing is on (see :mod:`latestore.encoders.windows`), each
window run through the model's own ``_window`` and ``_forward``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from latestore.encoders.base import PageContent, TokenVectors, page_texts
from latestore.encoders.windows import EncodedPage, WindowSettings, encode_text_pages

if TYPE_CHECKING:
    import torch

__all__ = ["WindowedTextPages"]


class WindowedTextPages:
    """Mixin: ``encode_pages`` and ``encode_pages_with_counts`` from the encoder's parts."""

    name: str
    tokenizer: Any
    windowing: WindowSettings
    batch_size: int
    device: str
    dim: int
    _span: int
    _pad_id: int

    def _window(self, ids: list[int], own_start: int, own_end: int) -> tuple[list[int], list[bool]]:
        raise NotImplementedError

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_pages(self, pages: Sequence[PageContent]) -> list[TokenVectors]:
        """One ``(n_tokens, dim)`` array per page (all its windows)."""
        return [page.vectors for page in self.encode_pages_with_counts(pages)]

    def encode_pages_with_counts(self, pages: Sequence[PageContent]) -> list[EncodedPage]:
        """Each page's vectors (all windows) and how many text tokens were cut."""
        return encode_text_pages(
            page_texts(self.name, pages),
            tokenizer=self.tokenizer,
            settings=self.windowing,
            span=self._span,
            window=self._window,
            forward=self._forward,
            pad_id=self._pad_id,
            batch_size=self.batch_size,
            device=self.device,
            dim=self.dim,
        )
