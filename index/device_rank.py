"""Exact MaxSim ranking of pages resident on a device, under a memory budget.

``exact_topk`` scores every allowed page against every query of a batch with one
kernel pass per chunk of pages, and keeps a running top-k on the device.
``rerank_pairs`` scores each query against its own candidates in one launch.

Temporaries are sized from ``DeviceTokenSearch.budget_bytes``, whatever the number
of queries, query tokens or pages: queries are taken in groups and pages in chunks.

Ranking order is score descending, ties by smaller page id, as on the CPU. It is
exact and deterministic because the top-k runs on one int64 key per (query, page):
the float32 score mapped to an order-preserving int32 in the high half, and the
page's position in descending id order in the low half.

With ``windows`` (best-window scoring, :mod:`latestore.index.segments`), the kernel
scores every window of a split page as an item of its own (its first row and length)
and each page keeps its best window's score, reduced on the device.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from latestore.index.device_search import Addresses, DeviceTokenSearch
from latestore.index.maxsim_launch import (
    PackedQueries,
    maxsim_pairs,
    maxsim_shared,
    pack_queries,
    query_bytes,
    shared_output_rows,
)
from latestore.index.ranking import Ranking
from latestore.index.segments import WindowRows, rows_for, window_lengths

LOW_MASK = 0xFFFFFFFF


def _group_queries(
    queries: list[npt.NDArray[np.float32]], dim: int, budget: int
) -> list[list[int]]:
    """Consecutive query indices whose padded copies use at most a quarter of the budget."""
    groups: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i, q in enumerate(queries):
        widest = max(longest, len(q))
        if current and query_bytes(len(current) + 1, widest, dim) > budget // 4:
            groups.append(current)
            current, widest = [], len(q)
        current.append(i)
        longest = widest
    if current:
        groups.append(current)
    return groups


def _to_keys(scores: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
    """int64 keys ordering (score desc, page id asc); ``ranks`` ascend with page id."""
    bits = (scores + 0.0).view(torch.int32)  # + 0.0 turns -0.0 into 0.0
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int64)
    return ordered * (1 << 32) + (LOW_MASK - ranks)[None, :]


def _from_keys(keys: torch.Tensor) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Inverse of :func:`_to_keys`, on the host: one copy from the device."""
    host = keys.cpu().numpy()
    high = (host >> 32).astype(np.int32)
    scores = np.where(high < 0, high ^ 0x7FFFFFFF, high).view(np.float32)
    ranks: npt.NDArray[np.int64] = LOW_MASK - (host & LOW_MASK)
    return scores, ranks


class WindowItems:
    """The windows of some pages as kernel items: first rows, lengths, and per page the
    index of its first window (host, ``n_pages + 1`` bounds) and the page of each window
    (device)."""

    def __init__(
        self,
        device: torch.device | str,
        starts: npt.NDArray[np.int64],
        lengths: npt.NDArray[np.int64],
        windows: WindowRows,
        page_ids: npt.NDArray[np.int64],
    ) -> None:
        segment_lengths, counts = window_lengths(lengths, rows_for(windows, page_ids.tolist()))
        owner = np.repeat(np.arange(len(lengths), dtype=np.int64), counts)
        first = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        # A window starts where the previous one of its page ends.
        inner = np.cumsum(segment_lengths) - segment_lengths
        within = inner - inner[first[owner]] if len(inner) else inner
        self.first = first
        self.starts = torch.from_numpy(np.ascontiguousarray(starts[owner] + within)).to(device)
        self.lengths = torch.from_numpy(segment_lengths).to(device)
        self.owner = torch.from_numpy(owner).to(device)
        self.mean_length = float(segment_lengths.mean()) if len(segment_lengths) else 1.0

    def best(self, scores: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """Window scores ``(n_queries, windows of pages lo..hi)`` -> ``(n_queries, hi - lo)``."""
        a, b = int(self.first[lo]), int(self.first[hi])
        if b - a == hi - lo:
            return scores  # no page in this range is split
        owner = (self.owner[a:b] - lo).expand(scores.shape[0], -1)
        out = torch.full((scores.shape[0], hi - lo), float("-inf"), device=scores.device)
        return out.scatter_reduce(1, owner, scores, reduce="amax", include_self=True)


def exact_topk(
    search: DeviceTokenSearch,
    queries: list[npt.NDArray[np.float32]],
    k: int,
    allowed: npt.NDArray[np.int64] | None = None,
    *,
    exact: bool = True,
    windows: WindowRows | None = None,
) -> list[Ranking]:
    """Top ``k`` pages per query by exact MaxSim over every allowed page held.

    ``exact=False`` multiplies with a float16 query (see maxsim_launch.pack_queries).
    ``windows``: pages of several windows score as their best window.
    """
    addresses = search.addresses(allowed)
    n = len(addresses)
    if n == 0 or k <= 0 or not queries:
        return [[] for _ in queries]
    layout = search.layout()
    items = None
    if windows:
        keep = slice(None) if allowed is None else np.isin(layout.page_ids, allowed)
        items = WindowItems(
            search.device, layout.starts[keep], layout.lengths[keep], windows, layout.page_ids[keep]
        )
    out: list[Ranking] = [[] for _ in queries]
    for group in _group_queries(queries, search.dim, search.budget_bytes):
        packed = pack_queries([queries[i] for i in group], search.device, exact=exact)
        keys = _group_topk(search, packed, addresses, k, items)
        scores, ranks = _from_keys(keys)
        for row, i in enumerate(group):
            pages = layout.sorted_ids[ranks[row]]
            out[i] = [(int(p), float(s)) for p, s in zip(pages, scores[row], strict=True)]
    return out


def _group_topk(
    search: DeviceTokenSearch,
    packed: PackedQueries,
    addresses: Addresses,
    k: int,
    items: WindowItems | None = None,
) -> torch.Tensor:
    n = len(addresses)
    # Per page: the kernel's float32 outputs, and the int64 keys plus top-k scratch.
    per_page = 4 * shared_output_rows(packed) + 24 * packed.n_queries
    if items is not None:  # outputs per window: budget by the mean windows per page
        per_page = per_page * max(1, -(-len(items.lengths) // max(1, n)))
    chunk = max(1, search.budget_bytes // (2 * per_page))
    best: torch.Tensor | None = None
    for lo in range(0, n, chunk):
        part = addresses.slice(lo, min(n, lo + chunk))
        if items is None:
            scores = maxsim_shared(
                packed,
                search.rows,
                part.starts,
                part.lengths,
                search.scales,
                mean_length=addresses.mean_length,
            )
        else:
            hi = min(n, lo + chunk)
            a, b = int(items.first[lo]), int(items.first[hi])
            window_scores = maxsim_shared(
                packed,
                search.rows,
                items.starts[a:b],
                items.lengths[a:b],
                search.scales,
                mean_length=items.mean_length,
            )
            scores = items.best(window_scores, lo, hi)
        keys = _to_keys(scores, part.ranks)
        del scores
        top = keys.topk(min(k, keys.shape[1]), dim=1, sorted=False).values
        del keys
        if best is not None:
            top = torch.cat([best, top], dim=1)
            top = top.topk(min(k, top.shape[1]), dim=1, sorted=False).values
        best = top
    assert best is not None
    return best.sort(dim=1, descending=True).values


def rerank_pairs(
    search: DeviceTokenSearch,
    queries: list[npt.NDArray[np.float32]],
    candidates: list[npt.NDArray[np.int64]],
    *,
    exact: bool = True,
    windows: WindowRows | None = None,
) -> list[npt.NDArray[np.float32]]:
    """Exact MaxSim of each query against its own candidate pages, in one launch per
    group of queries; returns one score array per query, in candidate order.
    ``windows``: pages of several windows score as their best window."""
    out: list[npt.NDArray[np.float32]] = [np.zeros(0, np.float32) for _ in queries]
    for group in _group_queries(queries, search.dim, search.budget_bytes):
        members = [i for i in group if len(candidates[i])]
        if not members:
            continue
        packed = pack_queries([queries[i] for i in members], search.device, exact=exact)
        spans = [search.spans(candidates[i].tolist()) for i in members]
        host_lengths = np.concatenate([n for _, n in spans])
        starts = torch.from_numpy(np.concatenate([s for s, _ in spans])).to(search.device)
        lengths = torch.from_numpy(host_lengths).to(search.device)
        sizes = [len(candidates[i]) for i in members]
        owner = np.repeat(np.arange(len(members), dtype=np.int64), sizes)
        if windows:
            scores = _window_pairs(search, packed, spans, candidates, members, owner, windows)
            parts = np.split(scores.cpu().numpy(), np.cumsum(sizes)[:-1])
            for i, part in zip(members, parts, strict=True):
                out[i] = part
            continue
        query_of = torch.from_numpy(owner).to(search.device)
        scores = maxsim_pairs(
            packed,
            search.rows,
            query_of,
            starts,
            lengths,
            search.scales,
            mean_length=float(host_lengths.mean()),
        )
        parts = np.split(scores.cpu().numpy(), np.cumsum(sizes)[:-1])
        for i, part in zip(members, parts, strict=True):
            out[i] = part
    return out


def _window_pairs(
    search: DeviceTokenSearch,
    packed: PackedQueries,
    spans: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]],
    candidates: list[npt.NDArray[np.int64]],
    members: list[int],
    owner: npt.NDArray[np.int64],
    windows: WindowRows,
) -> torch.Tensor:
    """:func:`rerank_pairs` with every window of a split candidate as its own item."""
    starts = np.concatenate([s for s, _ in spans])
    lengths = np.concatenate([n for _, n in spans])
    ids = np.concatenate([candidates[i] for i in members])
    items = WindowItems(search.device, starts, lengths, windows, ids)
    counts = np.diff(items.first)
    query_of = torch.from_numpy(np.repeat(owner, counts)).to(search.device)
    window_scores = maxsim_pairs(
        packed,
        search.rows,
        query_of,
        items.starts,
        items.lengths,
        search.scales,
        mean_length=items.mean_length,
    )
    return items.best(window_scores[None, :], 0, len(ids))[0]
