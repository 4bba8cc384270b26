"""The implementations of the plan's protocols (see :mod:`latestore.index.plan`).

* :class:`FaissCandidates`: candidate tokens from the persisted FAISS index.
* :class:`TorchCandidates`: candidate tokens by exact matmul over resident pages.
* :class:`GatherScorer`: exact MaxSim over pages gathered from a host cache or the
  device matrix, group by group (CPU kernels, or torch on a device).
* :class:`KernelScorer`: exact MaxSim by the fused Triton kernel over the resident
  packed matrix, every allowed page in one pass, no gather.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from latestore.index.maxsim_numpy import maxsim_blocks_numpy
from latestore.index.plan import PageIds, Queries
from latestore.index.ranking import Ranking, top_k
from latestore.index.segments import WindowRows, best_of, rows_for, split_blocks, window_lengths
from latestore.index.token_index import TokenIndex, selector_for_pages
from latestore.index.vectors import Block
from latestore.torch_use import rerank_with_numpy

if TYPE_CHECKING:
    import torch

    from latestore.index.device_search import DeviceTokenSearch

    Gather = Callable[
        [list[int]], tuple[npt.NDArray[np.floating] | torch.Tensor, npt.NDArray[np.int64]]
    ]
Blocks = Callable[[list[int]], Iterable[Block]]

# Pages scored per group by GatherScorer: memory stays flat however large the store.
GATHER_GROUP = 4096


def maxsim_host_blocks(queries: Queries, blocks: Iterable[Block]) -> npt.NDArray[np.float32]:
    """Host blocks scored with torch's kernels, or with numpy while torch is not loaded
    (latestore.torch_use)."""
    if rerank_with_numpy():
        return maxsim_blocks_numpy(queries, blocks)
    from latestore.index.maxsim import maxsim_blocks

    return maxsim_blocks(queries, blocks)


class FaissCandidates:
    def __init__(self, tokens: TokenIndex) -> None:
        self.tokens = tokens

    def search_tokens(
        self, queries: npt.NDArray[np.float32], k: int, nprobe: int, allowed: PageIds | None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        holder = None if allowed is None else selector_for_pages(allowed, self.tokens.page_tokens)
        selector = holder.selector if holder is not None else None
        return self.tokens.search(queries, k, nprobe=nprobe, selector=selector)


class TorchCandidates:
    def __init__(self, device: DeviceTokenSearch) -> None:
        self.device = device

    def search_tokens(
        self, queries: npt.NDArray[np.float32], k: int, nprobe: int, allowed: PageIds | None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        return self.device.search(queries, k, allowed)


class GatherScorer:
    """Exact MaxSim over pages of a cache; ``held`` lists every page it can score (for
    ``pages=None``). With ``blocks`` (the host cache), pages are scored where they lie,
    block by block (:func:`maxsim_blocks`); else they are copied out by ``gather``
    (the device matrix). With ``windows`` (best-window scoring), a page of several
    windows scores as its best window (:mod:`latestore.index.segments`)."""

    def __init__(
        self,
        gather: Gather,
        held: Callable[[], PageIds],
        blocks: Blocks | None = None,
        windows: WindowRows | None = None,
    ) -> None:
        self.gather = gather
        self.held = held
        self.blocks = blocks
        self.windows = windows

    def _scores(self, queries: Queries, pages: list[int]) -> npt.NDArray[np.float32]:
        if self.windows:
            return self._window_scores(queries, pages)
        if self.blocks is not None:
            return maxsim_host_blocks(queries, self.blocks(pages))
        # Pages gathered from the device copy: torch is loaded already.
        from latestore.index.maxsim import maxsim_many, maxsim_packed

        tokens, lengths = self.gather(pages)
        if len(queries) == 1 and isinstance(tokens, np.ndarray):
            return maxsim_packed(queries[0], tokens, lengths)[None, :]
        return maxsim_many(queries, tokens, lengths)

    def _window_scores(self, queries: Queries, pages: list[int]) -> npt.NDArray[np.float32]:
        """Every window of ``pages`` scored as a page of its own, then each page's best."""
        assert self.windows is not None
        rows = rows_for(self.windows, pages)
        if self.blocks is not None:
            per_block: list[npt.NDArray[np.int64]] = []
            windows = split_blocks(self.blocks(pages), rows, per_block)
            scores = maxsim_host_blocks(queries, windows)  # numpy or torch, as above
            counts = np.concatenate(per_block) if per_block else np.zeros(0, np.int64)
            return best_of(scores, counts)
        from latestore.index.maxsim import maxsim_many, maxsim_packed

        tokens, lengths = self.gather(pages)
        segment_lengths, counts = window_lengths(lengths, rows)
        if len(queries) == 1 and isinstance(tokens, np.ndarray):
            scores = maxsim_packed(queries[0], tokens, segment_lengths)[None, :]
        else:
            scores = maxsim_many(queries, tokens, segment_lengths)
        return best_of(scores, counts)

    def top_pages(
        self, queries: Queries, k: int, pages: PageIds | None, exact: bool
    ) -> list[Ranking]:
        pages = np.sort(self.held() if pages is None else pages)
        best_scores = [np.zeros(0, np.float32) for _ in queries]
        best_pages = [np.zeros(0, np.int64) for _ in queries]
        for start in range(0, len(pages), GATHER_GROUP):
            chunk = pages[start : start + GATHER_GROUP]
            scores = self._scores(queries, chunk.tolist())
            for qi in range(len(queries)):
                merged_scores = np.concatenate([best_scores[qi], scores[qi]])
                merged_pages = np.concatenate([best_pages[qi], chunk])
                keep = top_k(merged_scores, merged_pages, k)
                best_scores[qi], best_pages[qi] = merged_scores[keep], merged_pages[keep]
        return [
            [(int(p), float(s)) for p, s in zip(best_pages[qi], best_scores[qi], strict=True)]
            for qi in range(len(queries))
        ]

    def score_pages(
        self, queries: Queries, candidates: list[PageIds], exact: bool
    ) -> list[npt.NDArray[np.float32]]:
        out = []
        for query, pages in zip(queries, candidates, strict=True):
            if not len(pages):
                out.append(np.zeros(0, dtype=np.float32))
                continue
            if self.windows:
                out.append(self._window_scores([query], pages.tolist())[0])
                continue
            if self.blocks is not None:
                out.append(maxsim_host_blocks([query], self.blocks(pages.tolist()))[0])
                continue
            from latestore.index.maxsim import maxsim_packed

            tokens, lengths = self.gather(pages.tolist())
            out.append(maxsim_packed(query, tokens, lengths))
        return out


class KernelScorer:
    def __init__(self, device: DeviceTokenSearch, windows: WindowRows | None = None) -> None:
        self.device = device
        self.windows = windows  # best-window scoring: pages of several windows

    def top_pages(
        self, queries: Queries, k: int, pages: PageIds | None, exact: bool
    ) -> list[Ranking]:
        # Imported here: the kernel brings triton (seconds), which a CPU search never needs.
        from latestore.index.device_rank import exact_topk

        return exact_topk(self.device, queries, k, pages, exact=exact, windows=self.windows)

    def score_pages(
        self, queries: Queries, candidates: list[PageIds], exact: bool
    ) -> list[npt.NDArray[np.float32]]:
        from latestore.index.device_rank import rerank_pairs

        return rerank_pairs(self.device, queries, candidates, exact=exact, windows=self.windows)
