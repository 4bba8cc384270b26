"""Derived search state: token vectors, the FAISS candidate index, and the search plan.

Nothing here knows about SQL. The store feeds page vectors in and out and decides
which pages a query may see; this module turns that into ranked ``(page_id, score)``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from latestore.index import plan as search_plan
from latestore.index.devices import default_device
from latestore.index.plan import PageScorer, TokenCandidates, Universe
from latestore.index.ranking import DEFAULT_BUDGET_BYTES, Ranking, SearchParams, precise
from latestore.index.segments import record_windows
from latestore.index.snapshot import read_snapshot, write_snapshot
from latestore.index.token_index import (
    IndexParams,
    TokenIndex,
    auto_nlist,
    gpu_available,
)
from latestore.index.vectors import VectorCache

if TYPE_CHECKING:
    import torch

    from latestore.index.device_search import DeviceTokenSearch
    from latestore.models import StoreConfig

log = logging.getLogger(__name__)


# Share of the GPU's memory the resident page matrix may take; beyond it the store
# ranks through FAISS candidates and the host copy, as on a CPU.
DEVICE_MEMORY_SHARE = 0.7


def _kernel_available() -> bool:
    from latestore.index import maxsim_launch

    return maxsim_launch.available()


class LateInteractionIndex:
    """The derived search state of one store: what it holds, and which scorer and
    candidate source the plan (:mod:`latestore.index.plan`) uses now.

    Pages live in a host :class:`VectorCache` (the exact rerank on a CPU), in a FAISS
    :class:`TokenIndex` (candidate tokens; the part the snapshot persists) and, on a
    GPU, packed in a :class:`DeviceTokenSearch` that the fused kernel ranks from.

    The plan, per query batch: on a GPU with the resident matrix, exact MaxSim over
    every allowed page (``device_exact``); otherwise exact scoring when the allowed
    pages are few (``exhaustive_max_tokens``) or when asked (``exhaustive``), and
    else candidates from the token search, an approximate MaxSim over them, and an
    exact rerank of the best ``n_rerank``, widening the token search (and at last
    falling back to exact) when too few pages surface.
    """

    def __init__(
        self,
        dim: int,
        dtype: str,
        params: IndexParams,
        device: str | None = None,
        *,
        vectors_on_disk: bool = False,
        scratch_dir: Path | None = None,
        candidate_search: str = "auto",
        kernel: bool | None = None,
        device_budget_bytes: int = DEFAULT_BUDGET_BYTES,
        max_device_bytes: int | None = None,
        device_memory_share: float = DEVICE_MEMORY_SHARE,
        window_scoring: str = "union",
    ) -> None:
        self.dim = dim
        # "best": a page of several windows scores as its best window, whose rows
        # ``windows`` holds (the store fills it from ls_pages.window_rows); "union":
        # every page scores over all its rows.
        self.window_scoring = window_scoring
        self.windows: dict[int, npt.NDArray[np.int64]] = {}
        self.params = params
        # torch (seconds to import) loads here only on a GPU machine or when asked for a
        # device; on a CPU it waits for the first scoring call, so info and reindex skip it.
        self.device = device or default_device()
        on_cuda = self.device.startswith("cuda")
        # "auto": on CUDA without a FAISS GPU build, search candidates with torch on the
        # device; the FAISS index is still kept, since it is what the snapshot persists.
        self._torch_candidates = candidate_search == "torch" or (
            candidate_search == "auto" and on_cuda and not gpu_available()
        )
        # The fused kernel ranks on CUDA; kernel=True also runs it elsewhere (the CPU
        # tests, under TRITON_INTERPRET=1).
        self.kernel = (on_cuda if kernel is None else kernel) and _kernel_available()
        self.device_budget_bytes = device_budget_bytes
        self.max_device_bytes = max_device_bytes
        if max_device_bytes is None and on_cuda:
            import torch

            total = torch.cuda.get_device_properties(torch.device(self.device)).total_memory
            self.max_device_bytes = int(device_memory_share * total)
        self.device_fallback: str | None = None  # why pages are not resident, if not
        self.vectors = VectorCache(dim, dtype, on_disk=vectors_on_disk, directory=scratch_dir)
        self.tokens = TokenIndex(dim, params)
        self.trained_tokens = 0
        wants_device = self._torch_candidates or on_cuda or self.kernel
        self.device_tokens = self._new_device_tokens() if wants_device else None

    @classmethod
    def from_config(
        cls, dim: int, stored_dtype: str, config: StoreConfig, scratch_dir: Path | None = None
    ) -> LateInteractionIndex:
        """The index a store's settings describe (its ``index``, ``memory``, ``device``
        and ``search`` groups); ``stored_dtype``: how SQL stores the vectors."""
        memory, device = config.memory, config.device
        on_disk = memory.vector_cache == "disk"
        return cls(
            dim,
            memory.memory_dtype or stored_dtype,
            config.index_params(),
            vectors_on_disk=on_disk,
            scratch_dir=scratch_dir if on_disk else None,
            candidate_search=config.index.candidate_search,
            device_budget_bytes=device.budget_mb << 20,
            device_memory_share=device.memory_share,
            window_scoring=config.search.window_scoring or "union",
        )

    # -- updates ---------------------------------------------------------------
    def upsert(self, page_ids: list[int], vectors: list[npt.NDArray[Any]]) -> None:
        self.remove(page_ids)
        for page_id, v in zip(page_ids, vectors, strict=True):
            self.vectors.put(page_id, v)
        # Train before adding: a write that crosses ivf_min_tokens fills the new IVF
        # once, rather than a flat float32 copy of its pages that is thrown away.
        if not self.maybe_train():
            self._add_to_search(page_ids)

    def set_windows(self, rows: Mapping[int, Sequence[int] | None]) -> None:
        """Record the rows per window of ``rows``' pages (None: one segment)."""
        record_windows(self.windows, rows)

    @property
    def best_window(self) -> bool:
        return self.window_scoring == "best"

    def remove(self, page_ids: list[int]) -> None:
        for page_id in page_ids:
            self.windows.pop(page_id, None)
        self.tokens.remove(page_ids)
        if self.device_tokens is not None:
            self.device_tokens.remove(page_ids)
        for page_id in page_ids:
            self.vectors.discard(page_id)

    def reindex_from_cache(self, page_ids: list[int]) -> None:
        """Re-add ``page_ids`` to the candidate search from the cache (dropping absent ones)."""
        self.tokens.remove(page_ids)
        if self.device_tokens is not None:
            self.device_tokens.remove(page_ids)
        if not self.maybe_train():
            self._add_to_search([p for p in page_ids if p in self.vectors])

    def _add_to_search(self, page_ids: list[int], *, faiss: bool = True) -> None:
        """Add cached pages to the candidate search(es), reading each page once."""
        vectors = [self.vectors.get(p) for p in page_ids]  # int8 pages dequantise here
        if faiss:
            self.tokens.add(page_ids, vectors)
        device = self.device_tokens
        if device is None:
            return
        if not self._fits_on_device(device.ntotal + sum(len(v) for v in vectors)):
            return
        if device.quantized:  # the kernel reads int8 codes and scales as stored
            held = [self.vectors.codes(p) for p in page_ids]
            device.add(page_ids, [c for c, _ in held], [s for _, s in held])
        else:
            device.add(page_ids, vectors)

    def _fits_on_device(self, tokens: int) -> bool:
        """Keep pages resident while they fit; past the limit, drop the device copy."""
        device = self.device_tokens
        assert device is not None
        needed = tokens * device.bytes_per_row()
        if self.max_device_bytes is None or needed <= self.max_device_bytes:
            return True
        self.device_fallback = (
            f"{tokens} tokens need {needed >> 20} MiB on "
            f"{self.device}, over the {self.max_device_bytes >> 20} MiB allowed"
        )
        log.warning("latestore: pages no longer resident on the device: %s", self.device_fallback)
        self.device_tokens = None
        return False

    def _new_device_tokens(self) -> DeviceTokenSearch:
        import torch

        from latestore.index.device_search import DeviceTokenSearch

        # The kernel reads the store's precision: int8 codes with scales, or floats.
        dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.int8): torch.int8}.get(
            self.vectors.dtype, torch.float16
        )
        if not self.kernel and dtype == torch.int8:
            dtype = torch.float16  # the torch fallback reads floats
        return DeviceTokenSearch(
            self.dim, self.device, dtype=dtype, budget_bytes=self.device_budget_bytes
        )

    def _gather(
        self, page_ids: list[int]
    ) -> tuple[npt.NDArray[np.floating] | torch.Tensor, npt.NDArray[np.int64]]:
        if self.device_tokens is not None:
            return self.device_tokens.gather(page_ids)
        return self.vectors.gather(page_ids)

    def _fill_search(self, *, faiss: bool) -> None:
        """Add every cached page to a fresh device search (and to FAISS if asked)."""
        if self.device_tokens is not None or self.device_fallback:
            # A store that outgrew the device is tried again whenever it is refilled.
            self.device_tokens = self._new_device_tokens()
            self.device_fallback = None
            if self._fits_on_device(self.vectors.total_tokens):
                self.device_tokens.reserve(self.vectors.total_tokens)
        elif not faiss:
            return
        ids = self.vectors.page_ids().tolist()
        for start in range(0, len(ids), 2048):
            self._add_to_search(ids[start : start + 2048], faiss=faiss)

    @property
    def torch_candidates(self) -> bool:
        """Are candidate tokens searched by torch over the resident pages?"""
        return self._torch_candidates and self.device_tokens is not None

    @property
    def ranks_on_device(self) -> bool:
        """Does the fused kernel rank from resident pages?"""
        return self.kernel and self.device_tokens is not None

    def plan(self, params: SearchParams) -> str:
        """How an unfiltered query is answered now: for ``latestore info``."""
        if self.ranks_on_device and params.device_exact:
            return f"exact MaxSim over every page on {self.device} (fused kernel)"
        where = self.device if self.device_tokens is not None else "cpu"
        reason = f" ({self.device_fallback})" if self.device_fallback else ""
        return (
            f"candidates ({'torch' if self.torch_candidates else 'faiss'}) + exact rerank "
            f"on {where}; exact below {params.exhaustive_max_tokens} tokens{reason}"
        )

    def maybe_train(self) -> bool:
        """Switch from the flat index to IVF (filled from the cache) when the store first
        holds ``ivf_min_tokens``; True when it did.

        The IVF is trained once, on a sample of at most ``nlist * train_sample_per_list``
        tokens, and never re-trained as the store grows: re-training at each 4x growth
        made single writes stall for minutes at scale (training, then re-adding every
        token) and left the list count depending on how the pages arrived. Lists grow
        instead, and the search widens with them (SearchParams.widened). A rebuild (a
        missing snapshot, ``reindex``) trains afresh on a sample of the whole store.
        """
        if self.tokens.is_ivf or self.params.ivf_codec == "none":
            return False
        if self.vectors.total_tokens < self.params.ivf_min_tokens:
            return False
        self.rebuild()
        return True

    def rebuild(self) -> None:
        """Rebuild the candidate index from the cached vectors."""
        total = self.vectors.total_tokens
        self.tokens = TokenIndex(self.dim, self.params)
        if total >= self.params.ivf_min_tokens and self.params.ivf_codec != "none":
            nlist = auto_nlist(self.params)
            sample = self.vectors.sample(
                nlist * self.params.train_sample_per_list, self.params.seed
            )
            self.tokens.train_ivf(sample, total)
            self.trained_tokens = total
        else:
            self.trained_tokens = 0
        self._fill_search(faiss=True)

    # -- search ----------------------------------------------------------------
    def scorer(self) -> PageScorer:
        """Exact MaxSim over the pages held: the kernel when they are resident with it,
        else gathered from the device copy or the host cache."""
        from latestore.index.maxsim_numpy import block_tokens
        from latestore.index.scorers import GatherScorer, KernelScorer

        windows = self.windows if self.best_window and self.windows else None
        if self.ranks_on_device:
            assert self.device_tokens is not None
            return KernelScorer(self.device_tokens, windows)
        if self.device_tokens is not None:
            return GatherScorer(self._gather, self.vectors.page_ids, windows=windows)
        # On the CPU, pages are scored where they lie, block by block: no per-query copy.
        blocks = functools.partial(self.vectors.blocks, max_tokens=block_tokens(self.dim))
        return GatherScorer(self._gather, self.vectors.page_ids, blocks, windows)

    def candidates(self) -> TokenCandidates:
        from latestore.index.scorers import FaissCandidates, TorchCandidates

        if self.torch_candidates:
            assert self.device_tokens is not None
            return TorchCandidates(self.device_tokens)
        return FaissCandidates(self.tokens)

    def universe(self, allowed: npt.NDArray[np.int64] | None) -> Universe:
        return search_plan.universe_of(self.vectors, allowed)

    def score_pages(
        self,
        queries: list[npt.NDArray[np.float32]],
        pages: list[npt.NDArray[np.int64]],
        params: SearchParams,
    ) -> list[Ranking]:
        """Exact MaxSim of each query against the given pages (hybrid search's lexical
        candidates); pages this index does not hold are left out."""
        from latestore.index.threads import search_threads

        held = [search_plan.held_pages(self.vectors, ids) for ids in pages]
        with search_threads():
            scores = self.scorer().score_pages(queries, held, precise(params))
        return [
            [(int(p), float(s)) for p, s in zip(ids, found, strict=True)]
            for ids, found in zip(held, scores, strict=True)
        ]

    def search(
        self,
        queries: list[npt.NDArray[np.float32]],
        k: int,
        params: SearchParams,
        allowed: npt.NDArray[np.int64] | None = None,
        exhaustive: bool = False,
    ) -> list[Ranking]:
        """Top ``k`` pages per query, best first (ties broken by smaller page id).

        The plan itself is :func:`latestore.index.plan.run`.
        """
        from latestore.index.threads import search_threads

        scorer = self.scorer()
        with search_threads(exhaustive):  # thread counts decided per call
            return search_plan.run(
                queries,
                k,
                params,
                allowed,
                self.universe,
                scorer,
                self.candidates(),
                exhaustive=exhaustive,
                resident_scorer=scorer if self.ranks_on_device else None,
            )

    # -- persistence -----------------------------------------------------------
    def save(self, path: Path, header: dict[str, Any]) -> int:
        pages = np.array(sorted(self.tokens.page_tokens.items()), dtype=np.int64).reshape(-1, 2)
        head = dict(
            header,
            dim=self.dim,
            kind=self.tokens.kind,
            trained_tokens=self.trained_tokens,
            params=asdict(self.params),
        )
        return write_snapshot(
            path, head, {"faiss": self.tokens.streamed(), "pages": pages.tobytes()}
        )

    def load_tokens(self, path: Path, expect: dict[str, Any]) -> dict[str, Any]:
        """Replace the candidate index by a verified snapshot; returns its header."""
        snap = read_snapshot(path, dict(expect, dim=self.dim, params=asdict(self.params)))
        pairs = np.frombuffer(snap.sections["pages"], dtype=np.int64).reshape(-1, 2)
        page_tokens = {int(p): int(n) for p, n in pairs}
        # FAISS views the mapped file's lists in place (TokenIndex.viewing): no copy at
        # open; the first write that changes the index makes FAISS's own copy.
        tokens = TokenIndex.viewing(self.dim, self.params, snap.sections["faiss"])
        if tokens.index.d != self.dim:
            raise ValueError(f"index dim {tokens.index.d} != store dim {self.dim}")
        tokens.page_tokens = page_tokens
        if tokens.ntotal != sum(page_tokens.values()):
            raise ValueError("index token count disagrees with its page map")
        self.tokens = tokens
        self.trained_tokens = int(snap.header.get("trained_tokens", 0))
        self._fill_search(faiss=False)  # FAISS came from the snapshot; the device copy did not
        return snap.header

    def consistent(self) -> bool:
        """Does the candidate index hold exactly the cached pages and token counts?"""
        if len(self.tokens.page_tokens) != len(self.vectors):
            return False
        return all(
            p in self.vectors and self.vectors.n_tokens(p) == n
            for p, n in self.tokens.page_tokens.items()
        )
