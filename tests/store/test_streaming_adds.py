"""add_pages over a stream: committed batch by batch, reading ahead one batch at most."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from latestore import Page
from latestore.errors import DuplicateExternalIdError, InvalidInputError, NonFiniteVectorError
from tests.helpers import precomputed_store

DIM = 8


def page(i: int, bad: bool = False) -> Page:
    vectors = np.random.default_rng(i).standard_normal((3, DIM)).astype(np.float32)
    if bad:
        vectors[1, 2] = np.nan
    return Page(vectors=vectors, external_id=f"s{i}", metadata={"i": i})


def test_a_generator_is_committed_batch_by_batch(store_url: str) -> None:
    with precomputed_store(store_url, DIM) as store:
        stored_when_read: list[int] = []

        def pages() -> Iterator[Page]:
            for i in range(23):
                stored_when_read.append(store.count())
                yield page(i)

        progress: list[tuple[int, int]] = []
        ids = store.add_pages(
            pages(), commit_every=5, on_progress=lambda d, t: progress.append((d, t))
        )
        assert ids == list(range(1, 24))
        # Page i is read only once every batch before its own is committed.
        assert stored_when_read == [i - i % 5 for i in range(23)]
        assert store.stats().change_no == 5  # one transaction per batch
        assert progress[-1] == (23, 23) and all(d <= t for d, t in progress)
        assert [p.page_id for p in store.get_many(ids)] == ids


def test_a_failed_stream_keeps_earlier_batches_and_resumes(store_url: str) -> None:
    with precomputed_store(store_url, DIM) as store:
        broken = (page(i, bad=i == 12) for i in range(20))
        with pytest.raises(NonFiniteVectorError):
            store.add_pages(broken, commit_every=5)
        assert store.page_ids() == list(range(1, 11))  # batches 0-4 and 5-9; not 10-14
        change = store.stats().change_no
        ids = store.upsert_pages((page(i) for i in range(20)), commit_every=5)
        assert ids == list(range(1, 11)) + list(range(11, 21))
        assert store.stats().change_no == change + 2  # the stored batches wrote nothing


def test_streams_refuse_a_repeated_external_id_across_batches(store_url: str) -> None:
    with precomputed_store(store_url, DIM) as store:
        repeated = [page(0), page(1), page(2), page(0)]
        with pytest.raises(DuplicateExternalIdError, match="2 pages before"):
            store.add_pages(iter(repeated), commit_every=2)
        assert store.count() == 2


def test_lists_stay_one_transaction_unless_commit_every_is_given(store_url: str) -> None:
    with precomputed_store(store_url, DIM) as store:
        with pytest.raises(NonFiniteVectorError):
            store.add_pages([page(i, bad=i == 9) for i in range(10)])
        assert store.count() == 0
        with pytest.raises(NonFiniteVectorError):
            store.add_pages([page(i, bad=i == 9) for i in range(10)], commit_every=4)
        assert store.count() == 8
        for bad in (0, -1, 2.5, True, "3"):
            with pytest.raises(InvalidInputError, match="commit_every"):
                store.add_pages([page(0)], commit_every=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="iterable"):
            store.add_pages(None)  # type: ignore[arg-type]
        assert store.count() == 8
