"""Candidate token search in torch, for a GPU without a FAISS GPU build.

PyPI's faiss is CPU-only, so on most GPU servers the FAISS index would search on the
host while the rerank runs on the device. This keeps every token on the device in one
packed matrix and answers the same question FAISS does, the ``k`` best tokens per
query token with ids ``page << 20 | token``, by brute force: a matmul per block and a
running top-k. On a GPU that is exact and fast up to hundreds of millions of tokens;
it also runs on the CPU, which is how the tests compare it with FAISS.

Deleted pages leave dead rows that are masked out, and the matrix is compacted when
they reach half of it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from latestore.index.token_index import token_ids

BLOCK_ROWS = 1 << 22  # rows scored per matmul: bounds the (query tokens x block) buffer


class DeviceTokenSearch:
    """All page tokens packed on one device, searched exactly by matmul + top-k."""

    def __init__(self, dim: int, device: str | torch.device, dtype: torch.dtype | None = None):
        self.dim = dim
        self.device = torch.device(device)
        self.dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        self._rows = torch.empty((0, dim), dtype=self.dtype, device=self.device)
        self._ids = torch.empty(0, dtype=torch.int64, device=self.device)
        self._pages = torch.empty(0, dtype=torch.int64, device=self.device)
        self._live = torch.empty(0, dtype=torch.bool, device=self.device)
        self._used = 0
        self._where: dict[int, tuple[int, int]] = {}  # page id -> (first row, rows)
        self._dead = 0

    @property
    def ntotal(self) -> int:
        return self._used - self._dead

    def add(self, page_ids: list[int], vectors: list[npt.NDArray[Any]]) -> None:
        if not page_ids:
            return
        self.remove(page_ids)
        n = sum(len(v) for v in vectors)
        self._reserve(self._used + n)
        start = self._used
        rows = torch.from_numpy(np.concatenate(vectors).astype(np.float32, copy=False))
        self._rows[start : start + n] = rows.to(self.device, self.dtype)
        ids = np.concatenate([token_ids(p, len(v)) for p, v in zip(page_ids, vectors, strict=True)])
        pages = np.repeat(np.asarray(page_ids, dtype=np.int64), [len(v) for v in vectors])
        self._ids[start : start + n] = torch.from_numpy(ids).to(self.device)
        self._pages[start : start + n] = torch.from_numpy(pages).to(self.device)
        self._live[start : start + n] = True
        for page_id, v in zip(page_ids, vectors, strict=True):
            self._where[page_id] = (start, len(v))
            start += len(v)
        self._used += n

    def gather(self, page_ids: list[int]) -> tuple[torch.Tensor, npt.NDArray[np.int64]]:
        """The pages' token rows, packed in order on the device, and their lengths.

        Lets the rerank read the same device copy the search uses, so tokens are not
        held on the GPU twice.
        """
        spans = [self._where[p] for p in page_ids]
        lengths = np.fromiter((n for _, n in spans), dtype=np.int64, count=len(spans))
        if not spans:
            return self._rows[:0], lengths
        rows = np.concatenate([np.arange(first, first + n) for first, n in spans])
        return self._rows[torch.from_numpy(rows).to(self.device)], lengths

    def remove(self, page_ids: list[int]) -> None:
        for page_id in page_ids:
            found = self._where.pop(page_id, None)
            if found is not None:
                first, n = found
                self._live[first : first + n] = False
                self._dead += n
        if self._dead and self._dead * 2 >= self._used:
            self._compact()

    def search(
        self,
        queries: npt.NDArray[np.float32],
        k: int,
        allowed: npt.NDArray[np.int64] | None = None,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The ``k`` best tokens per query token: ``(scores, ids)``, id -1 where none."""
        n_queries = len(queries)
        k = max(1, k)
        best_s = torch.full((n_queries, 0), -torch.inf, device=self.device)
        best_i = torch.empty((n_queries, 0), dtype=torch.int64, device=self.device)
        if self._used:
            q = torch.as_tensor(np.asarray(queries, dtype=np.float32), device=self.device)
            keep = self._allowed_rows(allowed)
            for lo in range(0, self._used, BLOCK_ROWS):
                hi = min(self._used, lo + BLOCK_ROWS)
                block = self._rows[lo:hi]
                if self.device.type == "cuda":  # tensor cores; fp32 accumulation inside
                    sims = (q.to(self.dtype) @ block.T).float()
                else:  # CPU half matmuls are slow and round their output
                    sims = q @ block.float().T
                sims.masked_fill_(~keep[lo:hi], -torch.inf)
                top_s, top_r = sims.topk(min(k, hi - lo), dim=1)
                best_s = torch.cat([best_s, top_s], dim=1)
                best_i = torch.cat([best_i, self._ids[lo:hi][top_r]], dim=1)
                if best_s.shape[1] > k:
                    best_s, order = best_s.topk(k, dim=1)
                    best_i = best_i.gather(1, order)
        scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
        ids = np.full((n_queries, k), -1, dtype=np.int64)
        width = best_s.shape[1]
        scores[:, :width] = best_s.cpu().numpy()
        ids[:, :width] = best_i.cpu().numpy()
        ids[~np.isfinite(scores)] = -1  # masked rows that filled a short result
        return scores, ids

    def _allowed_rows(self, allowed: npt.NDArray[np.int64] | None) -> torch.Tensor:
        live = self._live[: self._used]
        if allowed is None:
            return live
        top = int(max(self._where, default=0))
        page_ok = torch.zeros(top + 1, dtype=torch.bool, device=self.device)
        wanted = allowed[(allowed >= 0) & (allowed <= top)]
        page_ok[torch.as_tensor(wanted, device=self.device)] = True
        pages = self._pages[: self._used].clamp(max=top)
        return live & page_ok[pages]

    def _reserve(self, rows: int) -> None:
        if rows <= len(self._rows):
            return
        capacity = max(rows, 2 * len(self._rows), 1024)
        self._rows = _grown(self._rows, capacity, self._used)
        self._ids = _grown(self._ids, capacity, self._used)
        self._pages = _grown(self._pages, capacity, self._used)
        self._live = _grown(self._live, capacity, self._used)

    def _compact(self) -> None:
        keep = self._live[: self._used].nonzero().squeeze(1)
        n = len(keep)
        self._rows[:n] = self._rows[keep]
        self._ids[:n] = self._ids[keep]
        self._pages[:n] = self._pages[keep]
        self._live[:n] = True
        self._live[n:] = False
        # Pages stay contiguous and in order, so each one's new start is a running sum.
        order = sorted(self._where.items(), key=lambda item: item[1][0])
        start = 0
        for page_id, (_, count) in order:
            self._where[page_id] = (start, count)
            start += count
        self._used, self._dead = n, 0


def _grown(tensor: torch.Tensor, capacity: int, used: int) -> torch.Tensor:
    out = torch.zeros((capacity, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    out[:used] = tensor[:used]
    return out
