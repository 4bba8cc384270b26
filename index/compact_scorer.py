"""The compact tier's implementations of the plan's protocols (see index/plan.py).

* :class:`CodeCandidates` (a ``TokenCandidates``): for each query token, the tokens of
  its ``nprobe`` best centroids (per codebook version) are scored on their decoded
  codes, and the best ``k`` returned. This is PLAID's inverted file over centroids,
  with no separate FAISS index: the centroid id in each code row *is* the list.
* :class:`DecodedScorer` (via ``GatherScorer``): exact MaxSim over decoded codes, the
  fully compact tier's final scores.
* :class:`FullPrecisionScorer`: exact MaxSim over the full-precision vectors of the
  final pages only, read from SQL by the store for each call; pages that vanished
  from SQL since (another process deleted them) score ``-inf`` and are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt

from latestore.index.maxsim import maxsim_packed
from latestore.index.plan import PageIds, Queries
from latestore.index.ranking import Ranking, top_k
from latestore.index.residual_codec import Codebooks
from latestore.index.scorers import GatherScorer
from latestore.index.segments import WindowRows, best_of, rows_for, window_lengths
from latestore.index.token_index import TOKEN_BITS
from latestore.index.vectors import pack_pages

# Full-precision pages of one call, read from SQL: page id -> (n_tokens, dim) floats.
FetchVectors = Callable[[list[int]], Iterable[tuple[int, npt.NDArray[np.floating]]]]


class InvertedLists:
    """Token positions per centroid id, over a snapshot of the code cache."""

    def __init__(self, centroid_ids: npt.NDArray[np.int64], token_ids: npt.NDArray[np.int64]):
        order = np.argsort(centroid_ids, kind="stable")
        self.sorted_centroids = centroid_ids[order]
        self.token_ids = token_ids[order]  # FAISS-style (page << TOKEN_BITS) | position
        self.rows = order  # row in the concatenated code matrix

    def members(self, centroids: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
        """Rows (into the concatenated codes) of every token in ``centroids``' lists."""
        starts = np.searchsorted(self.sorted_centroids, centroids, side="left")
        ends = np.searchsorted(self.sorted_centroids, centroids, side="right")
        if not len(starts):
            return np.zeros(0, dtype=np.intp)
        spans = [np.arange(s, e) for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
        return np.concatenate(spans).astype(np.intp)


class CodeCandidates:
    """Nearest page tokens per query token, scored on the compact codes."""

    def __init__(
        self,
        books: Codebooks,
        codes: npt.NDArray[np.uint8],
        lists: InvertedLists,
        page_of_row: npt.NDArray[np.int64],
    ) -> None:
        self.books = books
        self.codes = codes
        self.lists = lists
        self.page_of_row = page_of_row  # page id of each row of ``codes``

    def search_tokens(
        self, queries: npt.NDArray[np.float32], k: int, nprobe: int, allowed: PageIds | None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        n = len(queries)
        out_scores = np.full((n, k), -np.inf, dtype=np.float32)
        out_ids = np.full((n, k), -1, dtype=np.int64)
        if not len(self.codes) or n == 0:
            return out_scores, out_ids
        # Probe nprobe lists per codebook version, so tokens coded under an older
        # version stay reachable after a newer one is trained.
        probes = []
        for book in self.books.books:
            scores = queries @ book.centroids.T
            take = min(nprobe, book.n_centroids)
            best = np.argpartition(-scores, take - 1, axis=1)[:, :take]
            probes.append(best + book.first_id)
        probed = np.concatenate(probes, axis=1)  # (n, probes) global centroid ids
        union = np.unique(probed)
        members = self.lists.members(union)
        if allowed is not None:
            keep = np.isin(self.page_of_row[self.lists.rows[members]], allowed)
            members = members[keep]
        if not len(members):
            return out_scores, out_ids
        rows = self.lists.rows[members]
        decoded = self.books.decode(self.codes[rows])
        token_ids = self.lists.token_ids[members]
        centroid_of = self.lists.sorted_centroids[members]
        for qi in range(n):
            mine = np.isin(centroid_of, probed[qi])
            if not mine.any():
                continue
            scores = decoded[mine] @ queries[qi]
            ids = token_ids[mine]
            take = min(k, len(scores))
            best = np.argpartition(-scores, take - 1)[:take]
            best = best[np.argsort(-scores[best], kind="stable")]
            out_scores[qi, :take] = scores[best]
            out_ids[qi, :take] = ids[best]
        return out_scores, out_ids


def token_ids_of(page_ids: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]) -> PageIds:
    """FAISS-style token ids of pages laid end to end."""
    pages = np.repeat(page_ids, lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    positions = np.arange(int(lengths.sum()), dtype=np.int64) - starts
    out: PageIds = (pages << TOKEN_BITS) | positions
    return out


def decoded_scorer(
    decode: Callable[[list[int]], tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]],
    held: Callable[[], PageIds],
    windows: WindowRows | None = None,
) -> GatherScorer:
    """Exact MaxSim over the decoded codes (the fully compact tier's final scores);
    with ``windows``, split pages score as their best window."""
    return GatherScorer(decode, held, windows=windows)


class FullPrecisionScorer:
    """Final scores by exact MaxSim over full-precision vectors read for them only.

    ``top_pages`` (every allowed page: small stores, ``exhaustive``) ranks them all
    on the decoded codes first and reads the best ``max(k, n_final)`` from SQL.
    """

    def __init__(
        self,
        fetch: FetchVectors,
        decoded: GatherScorer,
        n_final: int,
        windows: WindowRows | None = None,
    ) -> None:
        self.fetch = fetch
        self.decoded = decoded
        self.n_final = n_final
        self.windows = windows  # best-window scoring: split pages' rows per window

    def top_pages(
        self, queries: Queries, k: int, pages: PageIds | None, exact: bool
    ) -> list[Ranking]:
        shortlist = self.decoded.top_pages(queries, max(k, self.n_final), pages, exact)
        chosen = [np.array([p for p, _ in r], dtype=np.int64) for r in shortlist]
        rescored = self.score_pages(queries, chosen, exact)
        out: list[Ranking] = []
        for ids, scores in zip(chosen, rescored, strict=True):
            keep = [i for i in top_k(scores, ids, k) if np.isfinite(scores[i])]
            out.append([(int(ids[i]), float(scores[i])) for i in keep])
        return out

    def score_pages(
        self, queries: Queries, candidates: list[PageIds], exact: bool
    ) -> list[npt.NDArray[np.float32]]:
        wanted = sorted({int(p) for pages in candidates for p in pages.tolist()})
        # One read for the whole batch: a page shared by several queries is read once.
        found = dict(self.fetch(wanted)) if wanted else {}
        out = []
        for query, pages in zip(queries, candidates, strict=True):
            scores = np.full(len(pages), -np.inf, dtype=np.float32)
            present = [i for i, p in enumerate(pages.tolist()) if p in found]
            if present:
                tokens, lengths = pack_pages(
                    [np.asarray(found[int(pages[i])], dtype=np.float32) for i in present]
                )
                if self.windows:
                    ids = [int(pages[i]) for i in present]
                    lengths, counts = window_lengths(lengths, rows_for(self.windows, ids))
                    per_window = maxsim_packed(query, tokens, lengths)[None, :]
                    scores[present] = best_of(per_window, counts)[0]
                else:
                    scores[present] = maxsim_packed(query, tokens, lengths)
            out.append(scores)
        return out
