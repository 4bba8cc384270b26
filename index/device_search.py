"""Page tokens resident on one device: exact MaxSim ranking and candidate token search.

Every page's tokens live in one packed ``(rows, dim)`` matrix (float16, float32, or
int8 codes with a float32 scale per token), addressed per page by first row and
length. The fused Triton kernel (maxsim_triton.py, launched by maxsim_launch.py)
scores pages in place from those addresses, with no gather copy, so exact MaxSim over
the whole store runs at the card's memory bandwidth; device_rank.py drives it under a
memory budget.

The same rows answer the candidate question FAISS answers, the ``k`` best tokens per
query token with ids ``page << 20 | token``, by matmul + running top-k: the path for
stores ranked by candidates on a GPU without a FAISS GPU build, and the way the tests
compare it with FAISS on the CPU.

Deleted pages leave dead rows that are masked out, and the matrix is compacted when
they reach half of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from latestore.index.ranking import DEFAULT_BUDGET_BYTES
from latestore.index.token_index import TOKEN_BITS

GROWTH = 1.25  # incremental adds: capacity stays within 25% of the tokens held
MIN_BLOCK_ROWS = 1024


@dataclass(frozen=True)
class Layout:
    """The live pages: ids, first rows and lengths (host arrays, in slot order).

    ``ranks[i]`` is the position of ``page_ids[i]`` in ascending id order
    (``sorted_ids``): a dense tie-break key the top-k selection can carry in 32 bits.
    """

    page_ids: npt.NDArray[np.int64]
    starts: npt.NDArray[np.int64]
    lengths: npt.NDArray[np.int64]
    ranks: npt.NDArray[np.int64]
    sorted_ids: npt.NDArray[np.int64]


@dataclass(frozen=True)
class Addresses:
    """Pages to score, on the device: tie-break ranks, first rows and lengths."""

    ranks: torch.Tensor
    starts: torch.Tensor
    lengths: torch.Tensor
    mean_length: float  # known on the host, so launching needs no device read

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def slice(self, lo: int, hi: int) -> Addresses:
        return Addresses(
            self.ranks[lo:hi], self.starts[lo:hi], self.lengths[lo:hi], self.mean_length
        )


class DeviceTokenSearch:
    """All page tokens packed on one device."""

    def __init__(
        self,
        dim: int,
        device: str | torch.device,
        dtype: torch.dtype | None = None,
        *,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
    ):
        self.dim = dim
        self.device = torch.device(device)
        self.dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        self.budget_bytes = budget_bytes
        self._rows = torch.empty((0, dim), dtype=self.dtype, device=self.device)
        self._scales = torch.empty(0, dtype=torch.float32, device=self.device)
        self._pages = torch.empty(0, dtype=torch.int64, device=self.device)
        self._live = torch.empty(0, dtype=torch.bool, device=self.device)
        self._used = 0
        self._dead = 0
        self._where: dict[int, tuple[int, int]] = {}  # page id -> (first row, rows)
        self._layout: Layout | None = None
        self._layout_on_device: Addresses | None = None

    @property
    def quantized(self) -> bool:
        return self.dtype == torch.int8

    @property
    def ntotal(self) -> int:
        return self._used - self._dead

    @property
    def rows(self) -> torch.Tensor:
        """The packed matrix (only its first ``used`` rows are meaningful)."""
        return self._rows

    @property
    def scales(self) -> torch.Tensor | None:
        return self._scales if self.quantized else None

    def bytes_per_row(self) -> int:
        """Device bytes held per token: the vector, its scale, its page id and flag."""
        return self.dim * self._rows.element_size() + (4 if self.quantized else 0) + 8 + 1

    def resident_bytes(self) -> int:
        return len(self._rows) * self.bytes_per_row()

    def __contains__(self, page_id: object) -> bool:
        return page_id in self._where

    # -- updates ---------------------------------------------------------------
    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` tokens in all (exactly, when the total is known)."""
        if rows > len(self._rows):
            self._resize(rows)

    def add(
        self,
        page_ids: list[int],
        vectors: list[npt.NDArray[Any]],
        scales: list[npt.NDArray[np.float32]] | None = None,
    ) -> None:
        """Add pages (replacing any with the same id); int8 takes codes and scales."""
        if not page_ids:
            return
        if self.quantized and scales is None:
            raise ValueError("an int8 device search takes codes and their scales")
        self.remove(page_ids)
        n = sum(len(v) for v in vectors)
        if self._used + n > len(self._rows):
            self._resize(max(self._used + n, int(len(self._rows) * GROWTH), 1024))
        start = self._used
        host = np.concatenate(vectors)
        if not self.quantized:
            host = host.astype(np.float32, copy=False)
        self._rows[start : start + n] = torch.from_numpy(host).to(self.device, self.dtype)
        if scales is not None and self.quantized:
            block = torch.from_numpy(np.concatenate(scales).astype(np.float32, copy=False))
            self._scales[start : start + n] = block.to(self.device)
        pages = np.repeat(np.asarray(page_ids, dtype=np.int64), [len(v) for v in vectors])
        self._pages[start : start + n] = torch.from_numpy(pages).to(self.device)
        self._live[start : start + n] = True
        for page_id, v in zip(page_ids, vectors, strict=True):
            self._where[page_id] = (start, len(v))
            start += len(v)
        self._used += n
        self._changed()

    def remove(self, page_ids: list[int]) -> None:
        removed = False
        for page_id in page_ids:
            found = self._where.pop(page_id, None)
            if found is not None:
                first, n = found
                self._live[first : first + n] = False
                self._dead += n
                removed = True
        if removed:
            self._changed()
        if self._dead and self._dead * 2 >= self._used:
            self._compact()

    def _changed(self) -> None:
        self._layout = None
        self._layout_on_device = None

    # -- addressing --------------------------------------------------------------
    def layout(self) -> Layout:
        """Live pages with their first row and length (cached until the next change)."""
        if self._layout is None:
            n = len(self._where)
            ids = np.fromiter(self._where.keys(), dtype=np.int64, count=n)
            spans = np.fromiter(
                (v for span in self._where.values() for v in span), dtype=np.int64, count=2 * n
            ).reshape(n, 2)
            order = np.argsort(ids, kind="stable")
            ranks = np.empty(n, dtype=np.int64)
            ranks[order] = np.arange(n, dtype=np.int64)
            self._layout = Layout(ids, spans[:, 0].copy(), spans[:, 1].copy(), ranks, ids[order])
        return self._layout

    def addresses(self, page_ids: npt.NDArray[np.int64] | None = None) -> Addresses:
        """Every live page's address on the device, or those of the held pages among
        ``page_ids`` (unknown ids are dropped)."""
        layout = self.layout()
        if page_ids is None:
            if self._layout_on_device is None:
                self._layout_on_device = self._to_device(layout, slice(None))
            return self._layout_on_device
        return self._to_device(layout, np.isin(layout.page_ids, page_ids))

    def _to_device(self, layout: Layout, keep: npt.NDArray[np.bool_] | slice) -> Addresses:
        ranks, starts, lengths = (
            torch.from_numpy(np.ascontiguousarray(a[keep])).to(self.device)
            for a in (layout.ranks, layout.starts, layout.lengths)
        )
        chosen = layout.lengths[keep]
        return Addresses(ranks, starts, lengths, float(chosen.mean()) if len(chosen) else 1.0)

    def spans(self, page_ids: list[int]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """First rows and lengths of ``page_ids`` (all must be held)."""
        found = [self._where[p] for p in page_ids]
        starts = np.fromiter((s for s, _ in found), dtype=np.int64, count=len(found))
        lengths = np.fromiter((n for _, n in found), dtype=np.int64, count=len(found))
        return starts, lengths

    def gather(self, page_ids: list[int]) -> tuple[torch.Tensor, npt.NDArray[np.int64]]:
        """The pages' token rows as floats, packed in order, and their lengths."""
        starts, lengths = self.spans(page_ids)
        if not len(starts):
            return torch.empty((0, self.dim), device=self.device), lengths
        rows = torch.from_numpy(
            np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths, strict=True)])
        ).to(self.device)
        return self._float_rows(rows), lengths

    def _float_rows(self, rows: torch.Tensor | slice) -> torch.Tensor:
        block = self._rows[rows]
        if self.quantized:
            return block.float() * self._scales[rows][:, None]
        return block if self.dtype == torch.float32 else block.float()

    # -- candidate token search ----------------------------------------------------
    def search(
        self,
        queries: npt.NDArray[np.float32],
        k: int,
        allowed: npt.NDArray[np.int64] | None = None,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The ``k`` best tokens per query token: ``(scores, ids)``, id -1 where none.

        Temporaries stay within ``budget_bytes``: the similarity block is sized by rows
        times query tokens, and query tokens are taken in groups when there are many.
        """
        n_q = len(queries)
        k = max(1, k)
        scores = np.full((n_q, k), -np.inf, dtype=np.float32)
        rows_out = np.full((n_q, k), -1, dtype=np.int64)
        if self._used and n_q:
            q_all = torch.as_tensor(np.asarray(queries, dtype=np.float32), device=self.device)
            keep = self._allowed_rows(allowed)
            # Each (query token, row) cell costs the float32 similarity plus top-k scratch.
            group = max(1, min(n_q, self.budget_bytes // (12 * (MIN_BLOCK_ROWS + 2 * k))))
            for q0 in range(0, n_q, group):
                q = q_all[q0 : q0 + group]
                best_s, best_r = self._search_group(q, k, keep)
                width = best_s.shape[1]
                scores[q0 : q0 + len(q), :width] = best_s.cpu().numpy()
                rows_out[q0 : q0 + len(q), :width] = best_r.cpu().numpy()
        found = np.isfinite(scores)
        return scores, np.where(found, self._token_ids(np.where(found, rows_out, 0)), -1)

    def _search_group(
        self, q: torch.Tensor, k: int, keep: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        block_rows = max(MIN_BLOCK_ROWS, self.budget_bytes // (12 * len(q)) - 2 * k)
        best_s = torch.full((len(q), 0), -torch.inf, device=self.device)
        best_r = torch.empty((len(q), 0), dtype=torch.int64, device=self.device)
        for lo in range(0, self._used, block_rows):
            hi = min(self._used, lo + block_rows)
            if self.device.type == "cuda" and self.dtype == torch.float16:
                sims = (q.to(self.dtype) @ self._rows[lo:hi].T).float()  # fp32 accumulation
            else:  # CPU half matmuls are slow and round their output
                sims = q @ self._float_rows(slice(lo, hi)).T
            sims.masked_fill_(~keep[lo:hi], -torch.inf)
            top_s, top_r = sims.topk(min(k, hi - lo), dim=1)
            del sims
            best_s = torch.cat([best_s, top_s], dim=1)
            best_r = torch.cat([best_r, top_r + lo], dim=1)
            if best_s.shape[1] > k:
                best_s, order = best_s.topk(k, dim=1)
                best_r = best_r.gather(1, order)
        return best_s, best_r

    def _token_ids(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """``page << 20 | token`` ids of packed rows."""
        layout = self.layout()
        order = np.argsort(layout.starts)
        starts = layout.starts[order]
        slot = np.clip(np.searchsorted(starts, rows, side="right") - 1, 0, None)
        pages = layout.page_ids[order][slot] if len(order) else np.zeros_like(rows)
        first = starts[slot] if len(order) else np.zeros_like(rows)
        ids: npt.NDArray[np.int64] = (pages << TOKEN_BITS) + (rows - first)
        return ids

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

    # -- storage -------------------------------------------------------------------
    def _resize(self, capacity: int) -> None:
        used = self._used
        self._rows = _resized(self._rows, capacity, used)
        self._pages = _resized(self._pages, capacity, used)
        self._live = _resized(self._live, capacity, used)
        if self.quantized:
            self._scales = _resized(self._scales, capacity, used)

    def _compact(self) -> None:
        keep = self._live[: self._used].nonzero().squeeze(1)
        n = len(keep)
        # In bounded pieces, front to back: keep[i] >= i, so a piece never overwrites
        # rows a later piece still has to read, and no full-size temporary is made.
        piece = max(MIN_BLOCK_ROWS, self.budget_bytes // (2 * self.bytes_per_row()))
        for lo in range(0, n, piece):
            rows = keep[lo : lo + piece]
            self._rows[lo : lo + len(rows)] = self._rows[rows]
            self._pages[lo : lo + len(rows)] = self._pages[rows]
            if self.quantized:
                self._scales[lo : lo + len(rows)] = self._scales[rows]
        self._live[:n] = True
        self._live[n:] = False
        # Pages stay contiguous and in order, so each one's new start is a running sum.
        order = sorted(self._where.items(), key=lambda item: item[1][0])
        start = 0
        for page_id, (_, count) in order:
            self._where[page_id] = (start, count)
            start += count
        self._used, self._dead = n, 0
        self._changed()


def _resized(tensor: torch.Tensor, capacity: int, used: int) -> torch.Tensor:
    out = torch.zeros((capacity, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    out[:used] = tensor[:used]
    return out
