"""The compact tier's derived search state: residual code rows, no FAISS index.

:class:`CompactIndex` answers the calls the store makes of
:class:`~latestore.index.late_index.LateInteractionIndex` (upsert, remove, rebuild,
search, score_pages, the snapshot hooks and the figures ``stats`` reads), so the
store's sync and search paths stay the same. What it holds per page is the page's
code rows (:mod:`latestore.index.residual_codec`), as SQL holds them; the inverted
lists over centroid ids are rebuilt from those rows when the pages changed.

Two tiers use it:

* ``compact``: candidates are scored on the codes and the final ``n_rerank`` pages by
  exact MaxSim over full-precision vectors that the store reads from SQL for them
  (``fetch``);
* ``compact-only``: no full-precision copy exists; final scores are exact MaxSim over
  the decoded codes.

No snapshot is written: the code rows are read from SQL at open (34 B per 128-dim
token at 2 bits, uint16 ids; 36 in memory, uint32 ids), and the lists are rebuilt
from them in one sort.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from latestore.errors import IndexSnapshotError, InvalidInputError
from latestore.index import plan as search_plan
from latestore.index.compact_scorer import (
    CodeCandidates,
    FetchVectors,
    FullPrecisionScorer,
    InvertedLists,
    decoded_scorer,
    token_ids_of,
)
from latestore.index.plan import PageScorer, Universe
from latestore.index.ranking import Ranking, SearchParams, precise
from latestore.index.residual_codec import Codebook, Codebooks
from latestore.index.segments import record_windows
from latestore.index.vectors import PageRows

TIERS = ("compact", "compact-only")


class CodeCache(PageRows):
    """Page id -> ``(n_tokens, row_bytes)`` code rows (the compact tier's cache)."""

    arena = None  # the figures ``stats`` reads: codes are always on the heap
    fallback: str | None = None  # ...and held in memory by design, never as a fallback

    def __init__(self, dim: int, nbits: int) -> None:
        self.dim = dim
        self.dtype = f"residual{nbits}"
        self._pages = {}
        self.total_tokens = 0

    def codes(self, page_id: int) -> npt.NDArray[np.uint8]:
        return self._pages[page_id]

    def put(self, page_id: int, rows: npt.NDArray[Any]) -> None:
        if rows.dtype != np.uint8 or rows.ndim != 2:
            raise InvalidInputError(
                f"the compact index holds code rows (uint8, 2-d), got {rows.dtype} {rows.shape}"
            )
        self.discard(page_id)
        held = np.ascontiguousarray(rows)
        held.setflags(write=False)
        self._pages[page_id] = held
        self.total_tokens += len(held)

    def discard(self, page_id: int) -> None:
        old = self._pages.pop(page_id, None)
        if old is not None:
            self.total_tokens -= len(old)

    def clear(self) -> None:
        self._pages.clear()
        self.total_tokens = 0

    # The sync drives the float tiers' persisted vector folder through these. Codes are
    # held on the heap and rebuilt from SQL (or the snapshot) at open, so there is no
    # folder to verify and nothing is ever found damaged.
    @property
    def damaged(self) -> set[int]:
        return set()

    def start_verifying(self) -> None:
        return None

    def take_damaged(self) -> list[int]:
        return []

    def detach(self) -> None:
        return None


class _Described:
    """What ``stats().index`` shows for a compact store."""

    def __init__(self, index: CompactIndex) -> None:
        self.index = index

    def describe(self) -> dict[str, Any]:
        books = self.index.books
        return {
            "kind": f"residual{self.index.nbits}",
            "tier": self.index.tier,
            "codebooks": len(books),
            "centroids": books.next_first_id,
            "tokens": self.index.vectors.total_tokens,
            "pages": len(self.index.vectors),
        }


class _Searchable:
    """The concatenated codes and inverted lists of one state of the cache."""

    def __init__(self, cache: CodeCache, row_bytes: int, books: Codebooks) -> None:
        ids = cache.page_ids()
        lengths = np.fromiter((cache.n_tokens(int(p)) for p in ids), np.int64, len(ids))
        parts = [cache.codes(int(p)) for p in ids]
        self.codes = np.concatenate(parts) if parts else np.zeros((0, row_bytes), dtype=np.uint8)
        self.page_of_row = np.repeat(ids, lengths)
        lists = InvertedLists(books.centroid_ids(self.codes), token_ids_of(ids, lengths))
        self.candidates = CodeCandidates(books, self.codes, lists, self.page_of_row)


class CompactIndex:
    """Derived search state of a compact-tier store (see the module docstring)."""

    device = "cpu"
    device_tokens = None
    device_fallback = None
    torch_candidates = False
    ranks_on_device = False
    kernel = False
    trained_tokens = 0

    def __init__(
        self,
        dim: int,
        nbits: int,
        tier: str,
        read_books: Callable[[], list[Codebook]],
        fetch: FetchVectors | None = None,
        window_scoring: str = "union",
    ) -> None:
        if tier not in TIERS:
            raise InvalidInputError(f"unknown compact tier {tier!r}; expected one of {TIERS}")
        if (tier == "compact") != (fetch is not None):
            raise InvalidInputError("the compact tier reads full vectors; compact-only has none")
        self.dim = dim
        self.nbits = nbits
        self.tier = tier
        self.read_books = read_books
        self.fetch = fetch
        self.books = Codebooks()
        self.vectors = CodeCache(dim, nbits)
        # Best-window scoring, as in LateInteractionIndex: rows per window of split pages.
        self.window_scoring = window_scoring
        self.windows: dict[int, npt.NDArray[np.int64]] = {}
        self.tokens = _Described(self)
        self._searchable: _Searchable | None = None
        self._lock = threading.Lock()

    # -- updates (called under the store's index write lock) -------------------
    def upsert(self, page_ids: list[int], vectors: list[npt.NDArray[Any]]) -> None:
        self.remove(page_ids)
        for page_id, rows in zip(page_ids, vectors, strict=True):
            self.vectors.put(page_id, rows)
        self._changed()
        self._ensure_books(vectors)

    def remove(self, page_ids: list[int]) -> None:
        for page_id in page_ids:
            self.vectors.discard(page_id)
            self.windows.pop(page_id, None)
        self._changed()

    @property
    def best_window(self) -> bool:
        return self.window_scoring == "best"

    def set_windows(self, rows: Mapping[int, Sequence[int] | None]) -> None:
        """Record the rows per window of ``rows``' pages (None: one segment)."""
        record_windows(self.windows, rows)

    def reindex_from_cache(self, page_ids: list[int]) -> None:
        self._changed()

    def rebuild(self) -> None:
        self._changed()
        self._ensure_books([self.vectors.codes(p) for p in self.vectors.page_ids().tolist()])

    def maybe_train(self) -> bool:
        return False  # codebooks are trained by the write path and kept in SQL

    def _changed(self) -> None:
        self._searchable = None

    def _state(self) -> _Searchable:
        state = self._searchable
        if state is not None:
            return state
        with self._lock:
            if self._searchable is None:
                self._searchable = _Searchable(
                    self.vectors, 4 + self.dim * self.nbits // 8, self.books
                )
            return self._searchable

    def _ensure_books(self, pages: list[npt.NDArray[Any]]) -> None:
        """Load codebook versions newer than those held, when ``pages``' code rows name
        centroids beyond them (this or another writer trained a version)."""
        newest = -1
        for rows in pages:
            if len(rows):
                newest = max(newest, int(self.books.centroid_ids(rows).max()))
        if newest < self.books.next_first_id:
            return
        held = self.books.versions()
        for book in sorted(self.read_books(), key=lambda b: b.version):
            if book.version not in held:
                self.books.add(book)

    # -- search ----------------------------------------------------------------
    def _decode_pages(
        self, page_ids: list[int]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        rows = [self.vectors.codes(p) for p in page_ids]
        lengths = np.fromiter((len(r) for r in rows), np.int64, len(rows))
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32), lengths
        return self.books.decode(np.concatenate(rows)), lengths

    def scorer(self, params: SearchParams | None = None) -> PageScorer:
        """Final scores: full precision from SQL (compact) or decoded codes."""
        windows = self.windows if self.best_window and self.windows else None
        decoded = decoded_scorer(self._decode_pages, self.vectors.page_ids, windows)
        if self.fetch is None:
            return decoded
        n_final = (params or SearchParams()).n_rerank
        return FullPrecisionScorer(self.fetch, decoded, n_final, windows)

    def candidates(self) -> CodeCandidates:
        return self._state().candidates

    def universe(self, allowed: npt.NDArray[np.int64] | None) -> Universe:
        return search_plan.universe_of(self.vectors, allowed)

    def plan(self, params: SearchParams) -> str:
        final = (
            f"exact MaxSim over full-precision vectors read from SQL for the best {params.n_rerank}"
            if self.fetch is not None
            else "exact MaxSim over the decoded codes"
        )
        return (
            f"candidates from {self.nbits}-bit residual codes (nprobe {params.nprobe} "
            f"centroids per query token), then {final}; exact below "
            f"{params.exhaustive_max_tokens} tokens"
        )

    def search(
        self,
        queries: list[npt.NDArray[np.float32]],
        k: int,
        params: SearchParams,
        allowed: npt.NDArray[np.int64] | None = None,
        exhaustive: bool = False,
    ) -> list[Ranking]:
        rankings = search_plan.run(
            queries,
            k,
            params,
            allowed,
            self.universe,
            self.scorer(params),
            self.candidates(),
            exhaustive=exhaustive,
        )
        # A page deleted from SQL by another process after this index last caught up
        # has no full vectors left to score: it scores -inf and is not returned.
        return [[(p, s) for p, s in r if np.isfinite(s)] for r in rankings]

    def score_pages(
        self,
        queries: list[npt.NDArray[np.float32]],
        pages: list[npt.NDArray[np.int64]],
        params: SearchParams,
    ) -> list[Ranking]:
        held = [search_plan.held_pages(self.vectors, ids) for ids in pages]
        scores = self.scorer(params).score_pages(queries, held, precise(params))
        return [
            [(int(p), float(s)) for p, s in zip(ids, found, strict=True) if np.isfinite(s)]
            for ids, found in zip(held, scores, strict=True)
        ]

    # -- persistence: nothing derived is written (the codes are SQL's) ---------
    def save(self, path: Path, header: dict[str, Any]) -> int:
        return 0

    def load_tokens(self, path: Path, expect: dict[str, Any]) -> dict[str, Any]:
        raise IndexSnapshotError("a compact-tier store keeps no candidate snapshot")

    def consistent(self) -> bool:
        return True
