"""The compact index without a store: candidates on codes, decoded and full scores."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from latestore.errors import InvalidInputError
from latestore.index.compact_index import CompactIndex
from latestore.index.ranking import SearchParams
from latestore.index.residual_codec import Codebook, Codebooks, train
from latestore.index.token_index import TOKEN_BITS

DIM = 16


def pages_of(rng: np.random.Generator, n: int) -> list[npt.NDArray[np.float32]]:
    centres = rng.standard_normal((12, DIM))
    out = []
    for _ in range(n):
        v = centres[rng.integers(0, 12, 10)] + 0.3 * rng.standard_normal((10, DIM))
        out.append((v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32))
    return out


def build(
    rng: np.random.Generator, full: bool
) -> tuple[CompactIndex, Codebook, list[npt.NDArray[np.float32]]]:
    pages = pages_of(rng, 40)
    book = train(np.concatenate(pages), 2, n_centroids=8)
    store = {i + 1: p for i, p in enumerate(pages)}
    index = CompactIndex(
        DIM,
        2,
        "compact" if full else "compact-only",
        read_books=lambda: [book],
        fetch=(lambda ids: [(p, store[p]) for p in ids if p in store]) if full else None,
    )
    index.upsert(list(store), [book.encode(p) for p in pages])
    return index, book, pages


def test_candidates_are_scored_on_the_decoded_codes(rng: np.random.Generator) -> None:
    index, book, pages = build(rng, full=False)
    query = pages[3][:4]
    scores, ids = index.candidates().search_tokens(query, 5, nprobe=8, allowed=None)
    decoded = Codebooks([book])
    for qi in range(len(query)):
        for score, token in zip(scores[qi], ids[qi], strict=True):
            page, position = int(token >> TOKEN_BITS), int(token & ((1 << TOKEN_BITS) - 1))
            vector = decoded.decode(book.encode(pages[page - 1][position : position + 1]))[0]
            assert score == pytest.approx(float(vector @ query[qi]), abs=1e-5)
        assert list(scores[qi]) == sorted(scores[qi], reverse=True)
    allowed = np.array([5, 9], dtype=np.int64)
    _, ids = index.candidates().search_tokens(query, 50, nprobe=8, allowed=allowed)
    assert set((ids[ids >= 0] >> TOKEN_BITS).tolist()) <= {5, 9}


def test_final_scores_come_from_the_fetched_vectors(rng: np.random.Generator) -> None:
    index, _, pages = build(rng, full=True)
    query = pages[20][:5]
    ranking = index.search([query], 5, SearchParams(exhaustive_max_tokens=0, n_rerank=10))[0]
    assert ranking[0][0] == 21
    for page, score in ranking:
        brute = float((query @ pages[page - 1].T).max(axis=1).sum())
        assert score == pytest.approx(brute, abs=1e-5)


def test_removed_pages_leave_the_lists(rng: np.random.Generator) -> None:
    index, _, pages = build(rng, full=False)
    index.remove([21])
    ranking = index.search([pages[20][:5]], 40, SearchParams(exhaustive_max_tokens=0))[0]
    assert 21 not in {p for p, _ in ranking}
    assert index.vectors.total_tokens == 39 * 10


def test_only_code_rows_are_held(rng: np.random.Generator) -> None:
    index, _, pages = build(rng, full=False)
    with pytest.raises(InvalidInputError, match="code rows"):
        index.upsert([99], [pages[0]])
    with pytest.raises(InvalidInputError, match="full vectors"):
        CompactIndex(DIM, 2, "compact", read_books=list)
