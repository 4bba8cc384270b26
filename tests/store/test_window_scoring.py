"""Best-window scoring in the store: a windowed page scores as its best window.

Every search path of a real MiniLM windowed store (exhaustive, the default plan with
FAISS candidates and exact rerank, hybrid's rescoring of lexical hits) must give each
page the brute-force best-window MaxSim (``best_window_maxsim`` over the windows that
``window_vector_counts`` derives independently from the page's counts), on SQLite and
PostgreSQL; union scoring (older stores, or chosen) must stay plain MaxSim; pages whose
rows no longer map to windows (pooled) score as one segment.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from latestore import Page, SearchConfig, StorageConfig, Store, StoreConfig
from latestore.encoders.pooling import PooledEncoder
from latestore.encoders.text.minilm import MiniLMEncoder
from latestore.encoders.windows import WindowSettings, best_window_maxsim, window_vector_counts
from latestore.store.sql import to_url

TOPICS = ["turbine blades", "nozzle flow", "boundary layer", "heat transfer", "shock waves"]


def long_text(i: int, sentences: int) -> str:
    return " ".join(
        f"Part {j} of report {i} studies {TOPICS[(i + j) % 5]} at station {j % 11}."
        for j in range(sentences)
    )


def pages() -> list[Page]:
    # Long pages of two to six windows, and short ones of one.
    out = [Page(text=long_text(i, 30 + 25 * (i % 4)), external_id=f"long-{i}") for i in range(8)]
    out += [
        Page(text=f"A short note on {t}.", external_id=f"short-{i}") for i, t in enumerate(TOPICS)
    ]
    return out


QUERIES = ["heat transfer in the boundary layer", "turbine blade station 7", "shock waves"]


@pytest.fixture(scope="module")
def windowed(minilm: MiniLMEncoder) -> MiniLMEncoder:
    return minilm.with_windowing(WindowSettings())


def counts_of(store: Store, encoder: MiniLMEncoder, page_id: int) -> list[int]:
    """The page's windows as the encoder's settings lay them out (an independent
    derivation from its recorded text tokens; MiniLM keeps [CLS] and [SEP] per window)."""
    page = store.get(page_id)
    info: Any = page
    kept = info.text_tokens - info.tokens_dropped
    stride = encoder.windowing.stride
    assert stride is not None
    return window_vector_counts(kept, encoder._span, stride, n_special=2)


def brute_force(
    store: Store, encoder: MiniLMEncoder, query: np.ndarray, best: bool
) -> dict[int, float]:
    ids = store.page_ids()
    out = {}
    for page_id, vectors in zip(ids, store.page_vectors_many(ids), strict=True):
        if best:
            out[page_id] = best_window_maxsim(query, vectors, counts_of(store, encoder, page_id))
        else:
            out[page_id] = float((query @ vectors.T).max(axis=1).sum(dtype=np.float32))
    return out


def assert_ranks_by(hits: list[Any], want: dict[int, float]) -> None:
    assert [h.page_id for h in hits] == sorted(want, key=lambda p: (-want[p], p))[: len(hits)]
    np.testing.assert_allclose([h.score for h in hits], [want[h.page_id] for h in hits], rtol=1e-5)


@pytest.mark.parametrize("exhaustive", [True, False])
def test_best_window_is_the_default_and_every_path_scores_it(
    store_url: str, windowed: MiniLMEncoder, exhaustive: bool
) -> None:
    # exhaustive_max_tokens=0 sends the default plan through candidates and rerank.
    config = StoreConfig(search=SearchConfig(exhaustive_max_tokens=0))
    with Store.open(store_url, windowed, config=config) as store:
        store.add_pages(pages())
        windows = store._sync.index.windows
        assert len(windows) >= 6  # the long pages are split
        for query in store.encode_queries(QUERIES):
            want = brute_force(store, windowed, query, best=True)
            hits = store.search(query, k=len(want), exhaustive=exhaustive)
            assert len(hits) == len(want) if exhaustive else len(hits) > 0
            assert_ranks_by(hits, want)
        union = brute_force(store, windowed, query, best=False)  # the last query's
        # The measured point of it all: the best window never beats the union.
        assert all(want[p] <= union[p] + 1e-5 for p in want)
        assert any(want[p] < union[p] - 1e-3 for p in want)


def test_store_records_its_choice_and_a_reopen_keeps_it(
    store_url: str, windowed: MiniLMEncoder
) -> None:
    with Store.open(store_url, windowed) as store:
        store.add_pages(pages())
        assert store.config.search.window_scoring == "best"
    with Store.open(store_url) as store:  # recorded encoder, recorded choice
        assert store.config.search.window_scoring == "best"
        assert store._sync.index.windows
        query = store.encode_queries(QUERIES[:1])[0]
        assert_ranks_by(store.search(query, k=13), brute_force(store, windowed, query, best=True))
    config = StoreConfig(search=SearchConfig(window_scoring="union"))  # for this session only
    with Store.open(store_url, config=config) as store:
        query = store.encode_queries(QUERIES[:1])[0]
        want = brute_force(store, windowed, query, best=False)
        assert_ranks_by(store.search(query, k=13, exhaustive=True), want)


def test_store_from_before_the_setting_keeps_the_union(
    tmp_path: Path, windowed: MiniLMEncoder
) -> None:
    path = tmp_path / "old.db"
    with Store.open(path, windowed) as store:
        store.add_pages(pages())
    engine = create_engine(to_url(str(path)))
    with engine.begin() as conn:  # as written before window_scoring existed
        config = conn.execute(text("SELECT config FROM ls_store")).scalar_one()
        conn.execute(
            text("UPDATE ls_store SET config = :c"),
            {
                "c": config.replace('"window_scoring": "best", ', "").replace(
                    ', "window_scoring": "best"', ""
                )
            },
        )
        stored = conn.execute(text("SELECT config FROM ls_store")).scalar_one()
    engine.dispose()
    assert "window_scoring" not in stored
    with Store.open(path) as store:
        assert store.config.search.window_scoring == "union"
        query = store.encode_queries(QUERIES[:1])[0]
        union_want = brute_force(store, windowed, query, best=False)
        assert_ranks_by(store.search(query, k=13, exhaustive=True), union_want)
        assert_ranks_by(store.search(query, k=5), union_want)
    with Store.open(path, config=StoreConfig(search=SearchConfig(window_scoring="best"))) as store:
        query = store.encode_queries(QUERIES[:1])[0]
        want = brute_force(store, windowed, query, best=True)
        assert_ranks_by(store.search(query, k=13, exhaustive=True), want)
    with Store.open(path) as store:  # the choice given above was for that session only
        assert store.config.search.window_scoring == "union"
        assert_ranks_by(store.search(query, k=13, exhaustive=True), union_want)
        store.set_window_scoring("best")  # recorded, and used at once
        assert_ranks_by(store.search(query, k=13, exhaustive=True), want)
    with Store.open(path, load_index=False) as store:
        assert store.config.search.window_scoring == "best"
        store.set_window_scoring("union")  # before the index loads
        assert_ranks_by(store.search(query, k=13, exhaustive=True), union_want)
    with Store.open(path) as store:
        assert store.config.search.window_scoring == "union"


def test_hybrid_rescoring_uses_the_best_window(tmp_path: Path, windowed: MiniLMEncoder) -> None:
    with Store.open(tmp_path / "h.db", windowed) as store:
        store.add_pages(pages())
        query = QUERIES[0]
        vectors = store.encode_queries([query])[0]
        want = brute_force(store, windowed, vectors, best=True)
        scored = store._sync.index.score_pages(
            [vectors], [np.array(store.page_ids(), np.int64)], store.config.search_params()
        )[0]
        assert {p: pytest.approx(s, rel=1e-5) for p, s in scored} == want


def test_pooled_pages_score_as_one_segment(tmp_path: Path, windowed: MiniLMEncoder) -> None:
    pooled = PooledEncoder(windowed, pool_factor=2)
    with Store.open(tmp_path / "p.db", pooled) as store:
        assert store.config.search.window_scoring == "best"
        store.add_pages(pages())
        assert store._sync.index.windows == {}
        query = store.encode_queries(QUERIES[:1])[0]
        want = brute_force(store, windowed, query, best=False)
        assert_ranks_by(store.search(query, k=13, exhaustive=True), want)


@pytest.mark.parametrize("tier", ["compact", "compact-only"])
def test_compact_tiers_score_the_best_window(
    tmp_path: Path, windowed: MiniLMEncoder, tier: str
) -> None:
    config = StoreConfig(
        storage=StorageConfig(tier=tier), search=SearchConfig(window_scoring="best")
    )
    with Store.open(tmp_path / "c.db", windowed, config=config) as store:
        store.add_pages(pages())
        index: Any = store._sync.index
        assert len(index.windows) >= 6
        query = store.encode_queries(QUERIES[:1])[0]
        hits = store.search(query, k=13, exhaustive=True)
        assert len(hits) == 13
        if tier == "compact":  # final scores: exact, over the full vectors in SQL
            want = brute_force(store, windowed, query, best=True)
        else:  # final scores: exact over the decoded codes
            ids = store.page_ids()
            tokens, lengths = index._decode_pages(ids)
            bounds = np.cumsum([0, *lengths.tolist()])
            want = {
                p: best_window_maxsim(
                    query, tokens[bounds[i] : bounds[i + 1]], counts_of(store, windowed, p)
                )
                for i, p in enumerate(ids)
            }
        assert_ranks_by(hits, want)


def test_explanations_come_from_the_winning_window(tmp_path: Path, windowed: MiniLMEncoder) -> None:
    from latestore.explain import explain
    from latestore.explain.positions import Unknown

    with Store.open(tmp_path / "e.db", windowed) as store:
        store.add_pages(pages())
        query = store.encode_queries(QUERIES[:1])[0]
        hits = store.search(query, k=13, exhaustive=True)
        windows = store.scoring_windows([h.page_id for h in hits])
        assert len(windows) >= 6
        for hit in hits:
            vectors = store.page_vectors(hit.page_id)
            rows = windows.get(hit.page_id)
            why = explain(hit.page_id, query, vectors, Unknown("test"), windows=rows)
            assert why.score == pytest.approx(hit.score, rel=1e-5)
            if rows is None:
                assert why.window is None
                continue
            assert why.window is not None
            start, end = why.window
            bounds = np.cumsum([0, *rows]).tolist()
            assert (start, end) in list(itertools.pairwise(bounds))
            assert all(start <= m.page_token < end for m in why.matches)
    with Store.open(
        tmp_path / "e.db", config=StoreConfig(search=SearchConfig(window_scoring="union"))
    ) as store:
        assert store.scoring_windows(store.page_ids()) == {}


def test_reencode_records_the_windows_of_pages_from_before_0008(
    tmp_path: Path, windowed: MiniLMEncoder
) -> None:
    path = tmp_path / "b.db"
    with Store.open(path, windowed) as store:
        store.add_pages(pages())
        recorded = dict(store.scoring_windows(store.page_ids()))
    assert len(recorded) >= 6
    engine = create_engine(to_url(str(path)))
    with engine.begin() as conn:  # as pages were written before revision 0008
        conn.execute(text("UPDATE ls_pages SET window_rows = NULL"))
    engine.dispose()
    with Store.open(path, windowed) as store:
        query = store.encode_queries(QUERIES[:1])[0]
        assert store._sync.index.windows == {}  # unknown windows: the union
        union = brute_force(store, windowed, query, best=False)
        assert_ranks_by(store.search(query, k=13, exhaustive=True), union)
        report = store.reencode("current")
        assert report.pages_reencoded == 0  # nothing to re-encode, only rows to derive
        assert report.pages_windows_recorded == len(recorded)
        assert store.scoring_windows(store.page_ids()) == recorded
        want = brute_force(store, windowed, query, best=True)
        assert_ranks_by(store.search(query, k=13, exhaustive=True), want)
    with Store.open(path) as store:  # another process's index sees them too
        assert_ranks_by(store.search(query, k=13, exhaustive=True), want)
