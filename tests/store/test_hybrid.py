"""Search modes over the SQL full-text index: lexical, hybrid, filters, analyzers.

Every test runs on SQLite and on PostgreSQL (the ``store_url`` fixture). Vectors are
given by the test (PrecomputedVectors), so the MaxSim side of each ranking is known
exactly and the lexical side is the database's own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine, text

import latestore.store.page_writer as store_module
from latestore import (
    HybridOptions,
    Page,
    PrecomputedVectors,
    SearchConfig,
    StorageConfig,
    Store,
    StoreConfig,
)
from latestore.errors import InvalidInputError
from latestore.index.fusion import default_weight, fuse
from latestore.index.maxsim import maxsim_reference
from latestore.store.sql import to_url
from tests.reliability.hostile_inputs import LEXICAL_QUERIES

DIM = 16
TEXTS = [
    "The pump model XJ-9000 needs a new gasket",  # 1
    "Valves and pumps of the cooling plant",  # 2
    "Running the reactor at night",  # 3
    "Gaskets wear out, and worn gaskets leak",  # 4
    "An unrelated page about birds",  # 5
]


def unit(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    out: npt.NDArray[np.float32] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


@pytest.fixture
def filled(store_url: str) -> tuple[Store, list[npt.NDArray[np.float32]]]:
    rng = np.random.default_rng(7)
    vectors = [unit(rng, 5) for _ in TEXTS]
    store = Store.open(store_url, PrecomputedVectors(dim=DIM))
    store.add_pages(
        [
            Page(text=t, vectors=v, external_id=f"p{i}", metadata={"lang": "en" if i % 2 else "de"})
            for i, (t, v) in enumerate(zip(TEXTS, vectors, strict=True), start=1)
        ]
    )
    yield store, vectors  # type: ignore[misc]
    store.close()


def lexical_ids(store: Store, words: str, **kwargs: object) -> list[int]:
    return [h.page_id for h in store.search(words, k=10, mode="lexical", **kwargs)]


def test_lexical_ranks_pages_that_contain_the_words(filled: tuple[Store, list]) -> None:
    store, _ = filled
    hits = store.search("XJ-9000 pump", k=10, mode="lexical")
    assert hits[0].page_id == 1  # both words, the rare one included
    assert {h.page_id for h in hits} == {1, 2}  # "pumps" stems to "pump"
    assert [h.rank for h in hits] == [1, 2] and [h.lexical_rank for h in hits] == [1, 2]
    assert all(h.signals == ("lexical",) and h.maxsim_score is None for h in hits)
    assert hits[0].score == hits[0].lexical_score > hits[1].score > 0


def test_full_text_index_follows_adds_upserts_and_deletes(filled: tuple[Store, list]) -> None:
    store, vectors = filled
    assert lexical_ids(store, "birds") == [5]
    store.upsert_pages(
        [Page(text="Now this page is about turbines", vectors=vectors[4], external_id="p5")]
    )
    assert lexical_ids(store, "birds") == []
    assert lexical_ids(store, "turbines") == [5]  # upsert keeps the page id
    store.delete([5])
    assert lexical_ids(store, "turbines") == []
    [new] = store.add_pages([Page(text="turbines again", vectors=vectors[0], external_id="t")])
    assert lexical_ids(store, "turbine") == [new]


def test_a_failed_add_leaves_the_full_text_index_as_it_was(filled: tuple[Store, list]) -> None:
    store, vectors = filled
    bad_dim = np.ones((3, DIM + 1), np.float32)
    with pytest.raises(InvalidInputError):
        store.add_pages(
            [
                Page(text="zeppelins over the harbour", vectors=vectors[0], external_id="z"),
                Page(text="zeppelins", vectors=bad_dim, external_id="z2"),
            ]
        )
    assert lexical_ids(store, "zeppelins") == []
    assert store.count() == len(TEXTS)


def test_a_write_that_fails_inside_its_transaction_leaves_no_index_entry(
    filled: tuple[Store, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, vectors = filled
    real_write = store_module.write_pages

    def write_then_fail(*args: object, **kwargs: object) -> object:
        real_write(*args, **kwargs)  # rows inserted: the index trigger / column has run
        raise RuntimeError("injected failure before commit")

    monkeypatch.setattr(store_module, "write_pages", write_then_fail)
    with pytest.raises(RuntimeError, match="injected"):
        store.add_pages([Page(text="zeppelins over the harbour", vectors=vectors[0])])
    monkeypatch.undo()
    assert lexical_ids(store, "zeppelins") == []
    [new] = store.add_pages([Page(text="zeppelins at last", vectors=vectors[0])])
    assert lexical_ids(store, "zeppelins") == [new]


def test_other_languages_where_the_backend_has_them(store_url: str) -> None:
    german = StoreConfig(storage=StorageConfig(text_analyzer="german"))
    if not store_url.startswith("postgresql"):
        with pytest.raises(InvalidInputError, match="not available on SQLite"):
            Store.open(store_url, PrecomputedVectors(dim=DIM), config=german)
        return
    rng = np.random.default_rng(4)
    with Store.open(store_url, PrecomputedVectors(dim=DIM), config=german) as store:
        store.add_pages([Page(text="Die Pumpen laufen", vectors=unit(rng, 3))])
        assert lexical_ids(store, "pumpe") == [1]  # German stemming: Pumpen -> pump
        assert "regconfig german, bm25" in store.text_analyzer()


def test_filters_apply_before_lexical_and_hybrid_ranking(filled: tuple[Store, list]) -> None:
    store, vectors = filled
    # Page 4 is the best lexical match for "gasket"; with k=1 only a filter applied
    # before ranking can return page 1 (a filter after ranking would return nothing).
    assert lexical_ids(store, "gasket") == [4, 1]
    hits = store.search(
        vectors[3], k=1, mode="lexical", lexical_text="gasket", filter={"lang": "en"}
    )
    assert [h.page_id for h in hits] == [1]
    # MaxSim's best page is 4 (the query is its own vectors), which the filter removes.
    hybrid = store.search(
        vectors[3],
        k=5,
        mode="hybrid",
        lexical_text="gasket",
        filter={"lang": "en"},
        hybrid=HybridOptions(fusion="rrf"),
    )
    assert {h.page_id for h in hybrid} == {1, 3, 5}
    assert hybrid[0].page_id == 1 and hybrid[0].signals == ("maxsim", "lexical")


def test_hybrid_scores_every_candidate_with_exact_maxsim(filled: tuple[Store, list]) -> None:
    store, vectors = filled
    query = vectors[0]
    exact = dict(enumerate(maxsim_reference(query, vectors).tolist(), start=1))
    by_maxsim = sorted(exact, key=lambda p: (-exact[p], p))
    assert by_maxsim.index(3) >= 2  # the words match page 3 only, which MaxSim ranks low
    hits = store.search(
        query,
        k=2,
        mode="hybrid",
        lexical_text="reactor",
        hybrid=HybridOptions(depth=1, fusion="rrf"),
    )
    # Candidates: MaxSim's top max(k, depth) = 2 pages, and the one lexical hit.
    union = [*by_maxsim[:2], 3]
    maxsim_rank = {p: r for r, p in enumerate(sorted(union, key=lambda p: -exact[p]), 1)}
    fused = {p: 1 / (60 + maxsim_rank[p]) + (1 / 61 if p == 3 else 0) for p in union}
    expected = sorted(union, key=lambda p: (-fused[p], -exact[p], p))[:2]
    assert [h.page_id for h in hits] == expected
    for hit in hits:
        assert hit.maxsim_score == pytest.approx(exact[hit.page_id], rel=1e-3)
        assert hit.score == pytest.approx(fused[hit.page_id], rel=1e-9)
        assert hit.signals == (("lexical",) if hit.page_id == 3 else ("maxsim",))
    lexical_only = next(h for h in hits if h.page_id == 3)  # rank 1 lexical beats MaxSim's 2nd
    assert lexical_only.lexical_rank == 1 and lexical_only.lexical_score is not None


def test_hybrid_fusion_rules_and_weight(filled: tuple[Store, list]) -> None:
    store, vectors = filled
    query = vectors[4][:3]
    words = "reactor night running"

    def top(options: HybridOptions) -> int:
        return store.search(query, k=5, mode="hybrid", lexical_text=words, hybrid=options)[
            0
        ].page_id

    assert top(HybridOptions(fusion="rrf", lexical_weight=0.0)) == 5
    assert top(HybridOptions(fusion="rrf", lexical_weight=1.0)) == 3
    assert top(HybridOptions(fusion="weighted", lexical_weight=0.0)) == 5
    assert top(HybridOptions(fusion="weighted", lexical_weight=1.0)) == 3
    weighted = store.search(
        query, k=5, mode="hybrid", lexical_text=words, hybrid=HybridOptions(fusion="weighted")
    )
    assert all(0.0 <= h.score <= 1.0 for h in weighted)
    assert weighted[0].score >= weighted[-1].score


def test_default_hybrid_is_convex_fusion_of_exact_scores(filled: tuple[Store, list]) -> None:
    """The default hybrid is fuse(rule="convex") over the union of both rankings, every
    candidate scored with exact MaxSim (the brute-force reference), on either backend."""
    store, vectors = filled
    query = vectors[4][:3]
    words = "reactor night running"
    hits = store.search(query, k=5, mode="hybrid", lexical_text=words, exhaustive=True)
    lexical = store.search(words, k=100, mode="lexical")
    reference = dict(enumerate(maxsim_reference(query, vectors).tolist(), start=1))
    # Every page is a candidate (5 pages, depth 100): the hits carry each page's exact
    # MaxSim as the store computes it (float16 vectors), checked against the reference.
    exact = {h.page_id: float(h.maxsim_score or 0.0) for h in hits}
    assert sorted(exact) == sorted(reference)
    expected = fuse(
        exact,
        set(exact),
        [(h.page_id, h.score) for h in lexical],
        k=5,
        rule="convex",
        weight=default_weight("convex"),
    )
    assert [h.page_id for h in hits] == [h.page_id for h in expected]
    for hit, want in zip(hits, expected, strict=True):
        assert hit.score == pytest.approx(want.score, rel=1e-9, abs=1e-12)
        assert hit.maxsim_score == pytest.approx(reference[hit.page_id], rel=1e-3)
    # With no lexical hit the convex rule is MaxSim's order.
    plain = store.search(query, k=5, mode="hybrid", lexical_text="zzzzqqq", exhaustive=True)
    assert [h.page_id for h in plain] == sorted(exact, key=lambda p: (-exact[p], p))


def test_image_only_pages_rank_by_maxsim_alone(store_url: str) -> None:
    rng = np.random.default_rng(3)
    image_vectors, text_vectors = unit(rng, 4), unit(rng, 4)
    with Store.open(store_url, PrecomputedVectors(dim=DIM)) as store:
        image_id, text_id = store.add_pages(
            [
                Page(vectors=image_vectors),
                Page(text="a chart of pump pressure", vectors=text_vectors),
            ]
        )
        hits = store.search(
            image_vectors,
            k=2,
            mode="hybrid",
            lexical_text="pump chart",
            hybrid=HybridOptions(fusion="rrf"),
        )
        image_hit = next(h for h in hits if h.page_id == image_id)
        assert image_hit.signals == ("maxsim",) and image_hit.lexical_rank is None
        assert image_hit.maxsim_score == pytest.approx(4.0, rel=1e-3)
        # Fused score of a page with one signal is its MaxSim term alone.
        assert image_hit.score == pytest.approx(1 / 61, rel=1e-6)
        assert lexical_ids(store, "pump chart") == [text_id]


def test_exact_phrase_restricts_every_mode(filled: tuple[Store, list]) -> None:
    store, vectors = filled
    for mode in ("maxsim", "hybrid", "lexical"):
        hits = store.search(vectors[1], k=5, mode=mode, lexical_text="pump", phrase="new gasket")
        assert [h.page_id for h in hits] == [1], mode
    assert store.search(vectors[1], k=5, phrase="gasket new") == []  # a phrase, in order


@pytest.mark.parametrize("words", LEXICAL_QUERIES, ids=range(len(LEXICAL_QUERIES)))
def test_query_syntax_is_never_interpreted(filled: tuple[Store, list], words: str) -> None:
    store, vectors = filled
    for mode in ("lexical", "hybrid"):
        store.search(vectors[0], k=5, mode=mode, lexical_text=words)
        if len(words) <= 2_000:
            store.search(vectors[0], k=5, mode=mode, lexical_text="pump", phrase=words)
        else:
            with pytest.raises(InvalidInputError, match="phrase must be text of 1 to 2000"):
                store.search(vectors[0], k=5, mode=mode, lexical_text="pump", phrase=words)
    # The words around the syntax still count: "pumps" finds both pump pages.
    assert {1, 2} <= set(lexical_ids(store, f"pumps {words}"))


def test_mode_arguments_are_checked(filled: tuple[Store, list]) -> None:
    store, vectors = filled
    with pytest.raises(InvalidInputError, match="mode must be one of"):
        store.search("pump", mode="bm25")
    with pytest.raises(InvalidInputError, match="lexical_text"):
        store.search(vectors[0], mode="lexical")
    with pytest.raises(InvalidInputError, match="lexical_text has 1 entries for 2"):
        store.search_many([vectors[0], vectors[1]], mode="hybrid", lexical_text=["x"])
    with pytest.raises(InvalidInputError, match="phrase"):
        store.search("pump", phrase="   ")
    with pytest.raises(ValidationError, match="lexical_weight"):
        HybridOptions(lexical_weight=2.0)
    with pytest.raises(InvalidInputError, match="bad search settings"):
        store.search("pump", mode="hybrid", hybrid={"lexical_weight": 2.0})  # type: ignore[arg-type]


def test_default_mode_is_a_query_time_setting(store_url: str) -> None:
    rng = np.random.default_rng(5)
    with Store.open(store_url, PrecomputedVectors(dim=DIM)) as store:
        store.add_pages([Page(text="lexical default", vectors=unit(rng, 3))])
    config = StoreConfig(search=SearchConfig(mode="lexical"))
    with Store.open(store_url, PrecomputedVectors(dim=DIM), config=config) as store:
        [hit] = store.search("default", k=3)  # no vectors needed: the query is not encoded
        assert hit.signals == ("lexical",)


def test_analyzer_is_configurable_and_recorded(store_url: str) -> None:
    rng = np.random.default_rng(9)
    simple = StoreConfig(storage=StorageConfig(text_analyzer="simple"))
    with Store.open(store_url, PrecomputedVectors(dim=DIM), config=simple) as store:
        store.add_pages([Page(text="Running engines", vectors=unit(rng, 3))])
        assert lexical_ids(store, "running") == [1]
        assert lexical_ids(store, "run") == []  # unstemmed
    with Store.open(store_url, PrecomputedVectors(dim=DIM)) as store:
        assert store.config.storage.text_analyzer == "simple"
        assert lexical_ids(store, "engine") == []
    with pytest.raises(InvalidInputError, match="fixed when a store is created"):
        Store.open(
            store_url,
            PrecomputedVectors(dim=DIM),
            config=StoreConfig(storage=StorageConfig(text_analyzer="english")),
        )


def test_stemming_analyzer_by_default(store_url: str) -> None:
    rng = np.random.default_rng(9)
    with Store.open(store_url, PrecomputedVectors(dim=DIM)) as store:
        store.add_pages([Page(text="Running engines", vectors=unit(rng, 3))])
        assert lexical_ids(store, "run engine") == [1]
        assert store.config.storage.text_analyzer == "english"


def test_unknown_analyzer_is_refused_and_creates_no_store(store_url: str) -> None:
    with pytest.raises(InvalidInputError, match="text_analyzer"):
        Store.open(
            store_url,
            PrecomputedVectors(dim=DIM),
            config=StoreConfig(storage=StorageConfig(text_analyzer="klingon")),
        )
    engine = create_engine(to_url(store_url))
    try:
        with engine.connect() as conn:
            tables = conn.dialect.get_table_names(conn)
            stored = (
                conn.execute(text("SELECT count(*) FROM ls_store")).scalar_one()
                if "ls_store" in tables
                else 0
            )
    finally:
        engine.dispose()
    assert stored == 0


def test_sqlite_index_passes_its_integrity_check(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    db = tmp_path / "fts.db"
    with Store.open(db, PrecomputedVectors(dim=DIM)) as store:
        ids = store.add_pages(
            [
                Page(text=f"page {i} text", vectors=unit(rng, 3), external_id=str(i))
                for i in range(20)
            ]
        )
        store.upsert_pages([Page(text="rewritten", vectors=unit(rng, 3), external_id="3")])
        store.delete(ids[5:9])
    engine = create_engine(to_url(str(db)))
    try:
        with engine.begin() as conn:
            # FTS5 compares its index against the content table; corruption raises.
            conn.execute(
                text("INSERT INTO ls_pages_fts(ls_pages_fts, rank) VALUES ('integrity-check', 1)")
            )
            indexed = conn.execute(text("SELECT count(*) FROM ls_pages_fts_docsize")).scalar_one()
    finally:
        engine.dispose()
    assert indexed == 16
