"""One full-text class per SQL dialect behind one interface (store/fulltext*.py).

The search behaviour itself (ranking, phrases, filters, analyzers on both backends)
is tested through the store in test_hybrid.py; this file checks how a dialect picks
its class and what each class refuses before touching a database.
"""

from __future__ import annotations

import pytest

from latestore.errors import InvalidInputError
from latestore.store import fulltext
from latestore.store.fulltext import LexicalSearch, for_dialect
from latestore.store.fulltext_postgres import TsvectorSearch
from latestore.store.fulltext_sqlite import FTS5_TOKENIZERS, Fts5Search


def test_each_dialect_has_its_own_class_behind_the_one_interface() -> None:
    assert fulltext.dialects() == {"sqlite": Fts5Search, "postgresql": TsvectorSearch}
    sqlite, postgres = for_dialect("sqlite", "english"), for_dialect("postgresql", "english")
    assert isinstance(sqlite, Fts5Search) and isinstance(sqlite, LexicalSearch)
    assert isinstance(postgres, TsvectorSearch) and isinstance(postgres, LexicalSearch)
    with pytest.raises(InvalidInputError, match="no full-text index for SQL dialect 'mysql'"):
        for_dialect("mysql", "english")
    with pytest.raises(TypeError):
        LexicalSearch("english")  # type: ignore[abstract]


def test_analyzer_names_per_dialect() -> None:
    for name, tokenizer in FTS5_TOKENIZERS.items():
        assert fulltext.engine_analyzer("sqlite", name) == tokenizer
    # PostgreSQL takes any configuration name; install() checks the server has it.
    assert fulltext.engine_analyzer("postgresql", "german") == "german"
    with pytest.raises(InvalidInputError, match="not available on SQLite"):
        for_dialect("sqlite", "german")
    for dialect in ("sqlite", "postgresql"):
        with pytest.raises(InvalidInputError, match="lowercase name"):
            for_dialect(dialect, "english'; DROP TABLE ls_pages; --")


def test_descriptions_name_what_each_engine_runs() -> None:
    assert fulltext.describe("sqlite", "simple") == (
        "simple (FTS5 tokenize='unicode61 remove_diacritics 2', bm25)"
    )
    assert fulltext.describe("postgresql", "english") == (
        "english (PostgreSQL regconfig english, bm25)"
    )
