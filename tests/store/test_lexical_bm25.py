"""Lexical ranking by BM25 on both backends; on PostgreSQL, BM25 computed in SQL.

PostgreSQL's BM25 (store/fulltext_postgres.py) is checked against a brute-force BM25
computed here in Python from the same words, before and after every kind of write,
and its corpus statistics (store/fulltext_pg_stats.py) against a recount.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, create_engine, text

import latestore.store.page_writer as store_module
from latestore import Page, PrecomputedVectors, StorageConfig, Store, StoreConfig
from latestore.migrations.runner import alembic_config, current_revision, head_revision
from latestore.store.fulltext_postgres import BM25_B, BM25_K1, bm25_idf
from latestore.store.sql import to_url
from tests.conftest import PG_HOW, PG_URL_ENV
from tests.postgres import fresh_database

DIM = 4
VOCABULARY = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()  # noqa: SIM905


def vectors(n: int = 2) -> np.ndarray:
    out = np.zeros((n, DIM), np.float32)
    out[:, 0] = 1.0
    return out


def lexical(store: Store, words: str, k: int = 100) -> list[tuple[int, float]]:
    return [(h.page_id, h.score) for h in store.search(words, k=k, mode="lexical")]


def test_a_rare_word_outranks_a_common_one(store_url: str) -> None:
    texts = [
        "pump pump pump pump pump",
        "gasket for the big valve",
        "pump station",
        "pump house",
        "pump motor",
        "pump seal",
    ]
    with Store.open(store_url, PrecomputedVectors(dim=DIM)) as store:
        store.add_pages([Page(text=t, vectors=vectors()) for t in texts])
        ranked = lexical(store, "pump gasket")
    # "pump" is on five of six pages, "gasket" on one: the gasket page comes first,
    # although the first page repeats "pump" five times. (ts_rank, which PostgreSQL
    # ranked by before, put the gasket page last: it weighs every word the same.)
    assert ranked[0][0] == 2
    assert ranked[0][1] > 10 * ranked[1][1]
    assert {page for page, _ in ranked} == set(range(1, 7))


def brute_force_bm25(texts: dict[int, str], query: str) -> dict[int, float]:
    """BM25 as fulltext_postgres documents it, for the "simple" analyzer (lowercase
    words, every one indexed): a page's length is its number of words."""
    pages = {page: Counter(t.lower().split()) for page, t in texts.items()}
    length = {page: sum(words.values()) for page, words in pages.items()}
    average = sum(length.values()) / len(pages)
    terms = set(query.lower().split())
    frequency = {t: sum(t in words for words in pages.values()) for t in terms}
    scores = {}
    for page, words in pages.items():
        found = terms & set(words)
        if not found:
            continue
        norm = BM25_K1 * (1 - BM25_B + BM25_B * length[page] / average)
        scores[page] = sum(
            bm25_idf(len(pages), frequency[t]) * words[t] * (BM25_K1 + 1) / (words[t] + norm)
            for t in found
        )
    return scores


@pytest.fixture
def pg_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh PostgreSQL database (BM25 in SQL and its statistics are PostgreSQL's)."""
    admin_url = os.environ.get(PG_URL_ENV)
    if not admin_url:
        pytest.skip(f"PostgreSQL only: {PG_HOW}")
    monkeypatch.setenv("HOME", str(tmp_path))  # the store's derived index files
    with fresh_database(admin_url) as url:
        yield url


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[tuple[Store, str]]:
    store_url = pg_url
    config = StoreConfig(storage=StorageConfig(text_analyzer="simple"))
    with Store.open(store_url, PrecomputedVectors(dim=DIM), config=config) as store:
        yield store, store_url


def random_texts(rng: np.random.Generator, n: int) -> list[str]:
    return [
        " ".join(rng.choice(VOCABULARY, size=int(rng.integers(1, 16))).tolist()) for _ in range(n)
    ]


def assert_equals_brute_force(store: Store, texts: dict[int, str], queries: list[str]) -> None:
    for query in queries:
        got = lexical(store, query)
        expected = brute_force_bm25(texts, query)
        assert dict(got) == pytest.approx(expected, rel=1e-9, abs=1e-12), query
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)


def assert_statistics_exact(engine: Engine) -> None:
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT sum(pages), sum(tokens) FROM ls_fulltext_stats")).one()
        recount = conn.execute(
            text("SELECT count(*), coalesce(sum(text_search_length), 0) FROM ls_pages")
        ).one()
        stale = conn.execute(
            text(
                "SELECT count(*) FROM ls_pages "
                "WHERE text_search_length <> ls_tsvector_tokens(text_search)"
            )
        ).scalar_one()
    assert tuple(kept) == tuple(recount)
    assert stale == 0


QUERIES = ["alpha", "mu lambda", "beta gamma delta", "alpha alpha kappa", "zeta nothing"]


def test_postgres_bm25_equals_a_brute_force_bm25_through_every_write(
    pg_store: tuple[Store, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, url = pg_store
    engine = create_engine(to_url(url))
    rng = np.random.default_rng(3)
    written = random_texts(rng, 30)
    added = store.add_pages(
        [Page(text=t, vectors=vectors(), external_id=f"e{i}") for i, t in enumerate(written)]
    )
    texts = dict(zip(added, written, strict=True))
    assert_statistics_exact(engine)
    assert_equals_brute_force(store, texts, QUERIES)

    # An upsert changes a page's text in place; a delete removes pages.
    store.upsert_pages([Page(text="mu mu mu kappa", vectors=vectors(), external_id="e7")])
    texts[store.get_by_external_id("e7").page_id] = "mu mu mu kappa"
    texts = {page: t for page, t in texts.items() if page in set(store.page_ids())}
    store.delete(added[:5])
    for gone in added[:5]:
        texts.pop(gone, None)
    assert_statistics_exact(engine)
    assert_equals_brute_force(store, texts, QUERIES)

    # A write that fails inside its transaction changes nothing.
    real_write = store_module.write_pages

    def write_then_fail(*args: object, **kwargs: object) -> object:
        real_write(*args, **kwargs)  # rows inserted: the statistics' trigger has run
        raise RuntimeError("injected failure before commit")

    monkeypatch.setattr(store_module, "write_pages", write_then_fail)
    with pytest.raises(RuntimeError, match="injected"):
        store.add_pages([Page(text="alpha " * 40, vectors=vectors())])
    monkeypatch.undo()
    assert_statistics_exact(engine)
    assert_equals_brute_force(store, texts, QUERIES)
    engine.dispose()


def test_only_stop_words_match_nothing(pg_store: tuple[Store, str]) -> None:
    store, _ = pg_store
    store.add_pages([Page(text="alpha beta", vectors=vectors())])
    assert lexical(store, "_ -- ()") == []
    assert lexical(store, "omega") == []


def test_migration_fills_the_statistics_of_an_existing_store(pg_url: str) -> None:
    from alembic import command

    texts = {1: "pumps leak", 2: "a gasket", 3: "gasket seals", 4: "seals and pumps"}
    config = StoreConfig(storage=StorageConfig(text_analyzer="simple"))
    with Store.open(pg_url, PrecomputedVectors(dim=DIM), config=config) as store:
        store.add_pages([Page(text=t, vectors=vectors()) for t in texts.values()])
    engine = create_engine(to_url(pg_url))
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0008_window_rows")
        assert conn.execute(text("SELECT to_regclass('ls_fulltext_stats')")).scalar() is None
        # Written while nothing counts: the migration must count from the pages.
        conn.execute(text("UPDATE ls_pages SET text = 'gasket gasket seals' WHERE id = 1"))
        conn.execute(text("DELETE FROM ls_pages WHERE id = 4"))
    texts[1] = "gasket gasket seals"
    del texts[4]
    with Store.open(pg_url, PrecomputedVectors(dim=DIM)) as store:
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
        assert_statistics_exact(engine)
        assert_equals_brute_force(store, texts, ["gasket", "seals pumps", "a leak"])
    engine.dispose()
