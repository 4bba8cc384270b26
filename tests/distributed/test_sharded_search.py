"""ShardedStore against a single Store on the same PostgreSQL database.

The corpus is real: the first 1,000 SciFact documents, encoded with the offline MiniLM
model. To keep CI on 2 cores short, each document is its title and the first 160
characters of its abstract (about 45 tokens); the queries are 40 real SciFact claims.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latestore import Page, SearchHit, SearchTuning
from latestore.errors import InvalidInputError, ShardUnavailableError
from tests.distributed.conftest import ranking_of, scifact_docs, scifact_queries

pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")

from latestore.distributed import ShardedIndex, ShardedStore, shard_of  # noqa: E402
from latestore.distributed.coordinator_sync import ShardedStats  # noqa: E402
from latestore.store import Store  # noqa: E402

N_DOCS = 1000
N_QUERIES = 40


@pytest.fixture(scope="module")
def scifact_url(pg_database: str, shared_data: Path, minilm: Any) -> str:
    docs = scifact_docs(shared_data, N_DOCS)
    pages = [
        Page(
            text=f"{d['title']}. {d['text'][:100]}",
            external_id=f"scifact:{d['_id'] if '_id' in d else d['id']}",
            metadata={"bucket": i % 5},
        )
        for i, d in enumerate(docs)
    ]
    with Store.open(pg_database, minilm) as store:
        store.add_pages(pages)
    return pg_database


@pytest.fixture(scope="module")
def query_vectors(shared_data: Path, minilm: Any) -> list[np.ndarray]:
    return list(minilm.encode_queries(scifact_queries(shared_data, N_QUERIES)))


@pytest.fixture(scope="module")
def single(scifact_url: str, minilm: Any) -> Iterator[Store]:
    with Store.open(scifact_url, minilm, index_dir=None) as store:
        yield store


@pytest.fixture(scope="module")
def sharded(ray_session: Any, scifact_url: str, minilm: Any) -> Iterator[ShardedStore]:
    with ShardedStore.open(scifact_url, minilm, shards=3, retries=3) as store:
        yield store


def test_pages_are_split_across_shards(sharded: ShardedStore, single: Store) -> None:
    stats = sharded.stats()
    assert isinstance(stats, ShardedStats)
    ids = single.page_ids()
    expected = np.bincount(shard_of(ids, 3), minlength=3).tolist()
    assert [s["pages"] for s in stats.shards] == expected
    assert stats.n_shards == 3
    assert stats.pages == single.count() == N_DOCS
    assert stats.tokens == single.stats().tokens
    assert all(s["rss_bytes"] > 0 for s in stats.shards)


@pytest.mark.parametrize("exhaustive", [True, False])
def test_same_ids_and_scores_as_single_store(
    sharded: ShardedStore, single: Store, query_vectors: list[np.ndarray], exhaustive: bool
) -> None:
    expected = single.search_many(query_vectors, k=10, exhaustive=exhaustive)
    got = sharded.search_many(query_vectors, k=10, exhaustive=exhaustive)
    assert [ranking_of(h) for h in got] == [ranking_of(h) for h in expected]
    assert [[h.external_id for h in hits] for hits in got] == [
        [h.external_id for h in hits] for hits in expected
    ]


def test_reindex_rebuilds_every_shard_and_keeps_results(
    sharded: ShardedStore, single: Store, query_vectors: list[np.ndarray]
) -> None:
    before = sharded.search_many(query_vectors[:5], k=10, exhaustive=True)
    sharded.reindex()
    after = sharded.search_many(query_vectors[:5], k=10, exhaustive=True)
    assert [ranking_of(h) for h in after] == [ranking_of(h) for h in before]


def full(hits: list[SearchHit]) -> list[tuple[Any, ...]]:
    """Everything a hit says about its ranking: order, scores of each signal, origin."""
    return [
        (h.page_id, h.rank, h.score, h.maxsim_score, h.lexical_score, h.lexical_rank, h.signals)
        for h in hits
    ]


TEXTS = [
    "vitamin D deficiency and bone density",
    "protein folding in the endoplasmic reticulum",
    "microRNA regulates gene expression in cancer cells",
    "antibiotic resistance of bacteria",
]


@pytest.mark.parametrize("mode", ["lexical", "hybrid"])
def test_lexical_and_hybrid_modes_match_single_store(
    sharded: ShardedStore, single: Store, mode: str
) -> None:
    # The store's own search path: full-text in SQL, MaxSim on the shards, fused here.
    spec = {"bucket": {"$in": [0, 2, 4]}}
    for filter_ in (None, spec):
        expected = single.search_many(TEXTS, k=10, filter=filter_, mode=mode)
        got = sharded.search_many(TEXTS, k=10, filter=filter_, mode=mode)
        assert [full(h) for h in got] == [full(h) for h in expected]
        assert all(got), "every query finds pages"
    if mode == "hybrid":
        # Some fused hits came from one ranking only: the lexical hits MaxSim did not
        # return were scored on their owning shards (ShardedIndex.score_pages).
        signals = {h.signals for hits in got for h in hits}
        assert ("maxsim", "lexical") in signals and len(signals) > 1


@pytest.mark.parametrize("mode", ["maxsim", "hybrid"])
def test_phrase_and_exhaustive_match_single_store(
    sharded: ShardedStore, single: Store, mode: str
) -> None:
    for exhaustive in (False, True):
        expected = single.search(TEXTS[0], k=10, mode=mode, phrase="vitamin", exhaustive=exhaustive)
        got = sharded.search(TEXTS[0], k=10, mode=mode, phrase="vitamin", exhaustive=exhaustive)
        assert full(got) == full(expected)
        assert got and all("vitamin" in (h.text or "").lower() for h in got)


def test_search_many_equals_search_per_query(sharded: ShardedStore, single: Store) -> None:
    # Query vectors encoded once (a batch of texts pads, so encodes a little apart).
    # Several queries scored in one batch round apart from one at a time in the last
    # float32 bit, in a local store as well: equal hits, scores to that rounding; and
    # each way bitwise equal to the local store's same way.
    vectors = sharded.encode_queries(TEXTS)
    for mode in ("maxsim", "lexical", "hybrid"):
        together = sharded.search_many(vectors, k=7, mode=mode, lexical_text=TEXTS)
        one_by_one = [
            sharded.search(v, k=7, mode=mode, lexical_text=text)
            for v, text in zip(vectors, TEXTS, strict=True)
        ]
        for many, one in zip(together, one_by_one, strict=True):
            assert [(h.page_id, h.rank, h.signals) for h in many] == [
                (h.page_id, h.rank, h.signals) for h in one
            ]
            assert [h.score for h in many] == pytest.approx([h.score for h in one], rel=1e-6)
        assert [full(h) for h in together] == [
            full(h) for h in single.search_many(vectors, k=7, mode=mode, lexical_text=TEXTS)
        ]
        assert [full(h) for h in one_by_one] == [
            full(single.search(v, k=7, mode=mode, lexical_text=text))
            for v, text in zip(vectors, TEXTS, strict=True)
        ]


def test_a_plain_store_with_a_sharded_index(
    ray_session: Any, scifact_url: str, minilm: Any, single: Store
) -> None:
    with Store.open(scifact_url, minilm, index=ShardedIndex(shards=2)) as store:
        assert type(store) is Store
        assert store.opened_from == "shards"
        stats = store.stats()
        assert isinstance(stats, ShardedStats)
        assert (stats.pages, stats.n_shards) == (N_DOCS, 2)
        for mode in ("maxsim", "lexical", "hybrid"):
            got = store.search_many(TEXTS, k=10, mode=mode)
            assert [full(h) for h in got] == [
                full(h) for h in single.search_many(TEXTS, k=10, mode=mode)
            ]
    with pytest.raises(InvalidInputError, match="shards"):
        ShardedIndex(shards=0)


def test_text_query_and_filter_match_single_store(sharded: ShardedStore, single: Store) -> None:
    query = "vitamin D deficiency and bone density"
    spec = {"bucket": {"$in": [1, 3]}}
    expected = single.search(query, k=20, filter=spec, exhaustive=True)
    got = sharded.search(query, k=20, filter=spec, exhaustive=True)
    assert ranking_of(got) == ranking_of(expected)
    assert {h.metadata["bucket"] for h in got} <= {1, 3}


def test_approximate_mode_returns_exact_scores(
    sharded: ShardedStore, single: Store, query_vectors: list[np.ndarray]
) -> None:
    # Forced through candidates (exhaustive_max_tokens=0): each shard reranks its own
    # candidates exactly, so every returned score is the page's exact MaxSim, up to the
    # float32 rounding that separates the rerank kernel from the exhaustive one (as in
    # a single store); which pages surface can differ from the single store's.
    exact = single.search_many(query_vectors, k=50, exhaustive=True)
    got = sharded.search_many(query_vectors, k=10, tuning=SearchTuning(exhaustive_max_tokens=0))
    for hits, truth in zip(got, exact, strict=True):
        true_score = {h.page_id: h.score for h in truth}
        assert hits and hits[0].page_id == truth[0].page_id
        for hit in hits:
            if hit.page_id in true_score:
                assert hit.score == pytest.approx(true_score[hit.page_id], rel=1e-6)


def test_api_reads_go_to_sql(sharded: ShardedStore, single: Store) -> None:
    assert sharded.count() == single.count()
    assert sharded.page_ids({"bucket": 2}) == single.page_ids({"bucket": 2})
    first = single.page_ids()[:3]
    assert [p.text for p in sharded.get_many(first)] == [p.text for p in single.get_many(first)]
    with pytest.raises(InvalidInputError):
        sharded.search("x", k=0)
    with pytest.raises(InvalidInputError):
        sharded.search("x", k=5, nprobe_typo=3)


def test_writes_are_seen_by_the_next_search(
    sharded: ShardedStore, single: Store, minilm: Any
) -> None:
    text = "Sharded late-interaction stores merge exact MaxSim top-k across Ray actors."
    # The coordinator's own write...
    (mine,) = sharded.add_pages([Page(text=text, external_id="ray:own")])
    assert sharded.search(text, k=1)[0].page_id == mine
    # ...and another client's write, committed through an ordinary Store.
    (theirs,) = single.add_pages([Page(text=text + " Again.", external_id="ray:other")])
    assert {h.page_id for h in sharded.search(text, k=2)} == {mine, theirs}
    assert sharded.delete([mine, theirs]) == 2
    assert {h.page_id for h in sharded.search(text, k=3)}.isdisjoint({mine, theirs})
    assert sharded.count() == N_DOCS


def test_killed_shard_is_restarted_and_searches_stay_complete(
    sharded: ShardedStore, single: Store, query_vectors: list[np.ndarray]
) -> None:
    expected = [ranking_of(h) for h in single.search_many(query_vectors[:8], k=10)]
    victim = sharded.shard_pids()[1]
    killed = threading.Event()

    def kill_soon() -> None:
        time.sleep(0.3)
        os.kill(victim, signal.SIGKILL)
        killed.set()

    threading.Thread(target=kill_soon, daemon=True).start()
    rounds = 0
    deadline = time.monotonic() + 60
    while (not killed.is_set() or rounds < 5) and time.monotonic() < deadline:
        got = sharded.search_many(query_vectors[:8], k=10)
        assert [ranking_of(h) for h in got] == expected  # never partial
        rounds += 1
    assert killed.is_set()
    assert victim not in sharded.shard_pids()  # Ray started a new process for shard 1


def test_dead_shard_raises_a_typed_error(ray_session: Any, scifact_url: str, minilm: Any) -> None:
    with ShardedStore.open(
        scifact_url, minilm, shards=1, max_restarts=0, retries=1, timeout_s=60
    ) as store:
        started = time.monotonic()
        os.kill(store.shard_pids()[0], signal.SIGKILL)
        with pytest.raises(ShardUnavailableError, match="shard 0"):
            store.search("protein folding", k=5)
        assert time.monotonic() - started < 30  # told at once, not after the timeout


def test_resize_moves_stored_vectors_only(
    sharded: ShardedStore, single: Store, query_vectors: list[np.ndarray]
) -> None:
    expected = [ranking_of(h) for h in single.search_many(query_vectors, k=10, exhaustive=True)]
    moved = sharded.resize(4)
    try:
        ids = single.page_ids()
        new_share = int((shard_of(ids, 4) == 3).sum())
        # Jump hashing: growing moves pages only onto the new shard.
        assert moved == {"dropped": new_share, "loaded": 0, "shards": 4}
        assert [s["pages"] for s in sharded.stats().shards][3] == new_share
        got = sharded.search_many(query_vectors, k=10, exhaustive=True)
        assert [ranking_of(h) for h in got] == expected
    finally:
        sharded.resize(3)
    assert [ranking_of(h) for h in sharded.search_many(query_vectors, k=10, exhaustive=True)] == (
        expected
    )


def test_bad_shard_count_is_refused(scifact_url: str) -> None:
    with pytest.raises(InvalidInputError, match="shards"):
        ShardedStore.open(scifact_url, shards=0)
    with pytest.raises(InvalidInputError, match="shards"):
        ShardedStore.open(scifact_url, shards=True)  # type: ignore[arg-type]


def test_shards_reload_from_their_snapshots(
    ray_session: Any,
    scifact_url: str,
    minilm: Any,
    single: Store,
    query_vectors: list[np.ndarray],
    tmp_path: Path,
) -> None:
    expected = [ranking_of(h) for h in single.search_many(query_vectors[:5], k=10)]
    with ShardedStore.open(scifact_url, minilm, shards=2, snapshot_dir=tmp_path) as first:
        assert {s["opened_from"] for s in first.stats().shards} == {"rebuilt"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-0-of-2", "shard-1-of-2"]
    with ShardedStore.open(scifact_url, minilm, shards=2, snapshot_dir=tmp_path) as second:
        assert {s["opened_from"] for s in second.stats().shards} == {"snapshot"}
        got = [ranking_of(h) for h in second.search_many(query_vectors[:5], k=10)]
    assert got == expected
