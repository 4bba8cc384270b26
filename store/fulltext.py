"""The full-text index of page text, inside the SQL database, and lexical queries on it.

SQLite keeps an external-content FTS5 table (``ls_pages_fts``) that triggers on
``ls_pages`` update; PostgreSQL keeps a generated, stored ``tsvector`` column
(``ls_pages.text_search``) with a GIN index. Either way the database maintains the
index inside the transaction that writes the page rows: an add, upsert or delete
commits page, vectors and full-text entries together or not at all, and no write
path of latestore mentions the index.

Both index the first ``INDEXED_CHARS`` characters of a page: a PostgreSQL tsvector
holds at most 1 MB, and SQLite indexes the same prefix so the two backends agree.

User text is never handed to the engine's query language. A query is cut into word
runs (``\\w+``: letters, digits, underscore), each becomes a quoted FTS5 string or a
quoted tsquery lexeme, and they are ORed, so quotes, ``AND``/``OR``/``NEAR``, ``*``,
``-``, parentheses and colons are only ever separators. An ``exact`` phrase is one
quoted FTS5 string, or ``phraseto_tsquery``.

One class per dialect implements :class:`LexicalSearch`: :class:`Fts5Search`
(``fulltext_sqlite.py``) and :class:`TsvectorSearch` (``fulltext_postgres.py``), both
ranking by Okapi BM25 (FTS5's ``bm25()``; on PostgreSQL the same formula in SQL).
:func:`for_dialect` is the one place that picks between them; this module holds what
they share (the query's words, the order of a ranking, the analyzer name's check).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, Connection, Select
from sqlalchemy.orm import Session

from latestore.errors import InvalidInputError

__all__ = [
    "DEFAULT_ANALYZER",
    "INDEXED_CHARS",
    "MAX_TERMS",
    "LexicalHit",
    "LexicalSearch",
    "describe",
    "dialects",
    "engine_analyzer",
    "for_dialect",
    "install",
    "query_terms",
    "remove",
]

INDEXED_CHARS = 200_000
# Word runs of one query that reach the engine: more add nothing to a ranking.
MAX_TERMS = 256
DEFAULT_ANALYZER = "english"

_ANALYZER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class LexicalHit:
    page_id: int
    score: float  # higher is better: -bm25() on SQLite, BM25 computed in SQL on PostgreSQL


class LexicalSearch(ABC):
    """Lexical queries over one store's full-text index, as SQLAlchemy statements.

    A subclass is one SQL dialect: how its index is built and dropped, how an analyzer
    name maps to the engine's, and the statements that rank, match and filter pages.
    """

    dialect: ClassVar[str]

    def __init__(self, analyzer: str) -> None:
        self.analyzer = analyzer
        self.engine_analyzer = self.resolve(analyzer)  # refuse a name it cannot run

    @classmethod
    def resolve(cls, analyzer: str) -> str:
        """What ``analyzer`` is on this backend (an FTS5 tokenizer, a regconfig).

        The name goes into DDL (neither engine takes a bound parameter there), so it
        is checked against a strict pattern first.
        """
        if not _ANALYZER_NAME.match(analyzer):
            raise InvalidInputError(
                f"text_analyzer must be a lowercase name such as 'english' or 'simple', "
                f"got {analyzer!r:.80}"
            )
        return cls._engine_name(analyzer)

    @classmethod
    @abstractmethod
    def _engine_name(cls, analyzer: str) -> str: ...

    @abstractmethod
    def describe(self) -> str:
        """The analyzer as `latestore info` shows it: the name and what the engine runs."""

    @abstractmethod
    def install(self, conn: Connection) -> None:
        """Create this index and fill it from the stored pages (none may exist yet)."""

    @classmethod
    @abstractmethod
    def remove(cls, conn: Connection) -> None:
        """Drop the index, if there is one."""

    def top(
        self,
        session: Session,
        query: str,
        n: int,
        allowed: ColumnElement[bool] | None = None,
        exact: str | None = None,
    ) -> list[LexicalHit]:
        """The ``n`` best pages for ``query``, best first, ties by smaller page id.

        ``allowed`` (a filter over ``ls_pages``) restricts the pages before ranking;
        ``exact`` is a phrase the pages must contain.
        """
        terms = query_terms(query)
        phrase = WORD.findall(exact) if exact is not None else []
        if not terms or (exact is not None and not phrase):
            return []
        ranked = self._ranked(session, terms, phrase)
        if ranked is None:
            return []
        statement = self._restricted(ranked, allowed)
        rows = session.execute(statement.limit(n))
        return [LexicalHit(int(page_id), float(score)) for page_id, score in rows]

    def containing(
        self, session: Session, phrase: str, allowed: ColumnElement[bool] | None = None
    ) -> list[int]:
        """Ids of the pages that contain ``phrase`` (after the analyzer), ascending."""
        words = WORD.findall(phrase)
        if not words:
            return []
        statement = self._restricted(self._containing(words), allowed)
        return sorted(int(i) for i in session.execute(statement).scalars())

    @abstractmethod
    def _ranked(self, session: Session, terms: list[str], phrase: list[str]) -> Select[Any] | None:
        """(page id, score) of the pages matching any term (and the phrase, if any),
        best first, ties by smaller page id; None where no term can match. ``session``
        is for the corpus statistics a backend reads before ranking."""

    @abstractmethod
    def _containing(self, words: list[str]) -> Select[Any]:
        """Page ids of the pages holding ``words`` as a phrase."""

    @abstractmethod
    def _restricted(
        self, statement: Select[Any], allowed: ColumnElement[bool] | None
    ) -> Select[Any]:
        """``statement`` kept to the pages ``allowed`` (a filter over ``ls_pages``)."""


def dialects() -> dict[str, type[LexicalSearch]]:
    """The full-text class of each SQL dialect latestore supports."""
    # Imported here: the dialect modules import this one for the base class.
    from latestore.store.fulltext_postgres import TsvectorSearch
    from latestore.store.fulltext_sqlite import Fts5Search

    return {Fts5Search.dialect: Fts5Search, TsvectorSearch.dialect: TsvectorSearch}


def _class_for(dialect: str) -> type[LexicalSearch]:
    found = dialects().get(dialect)
    if found is None:
        raise InvalidInputError(f"no full-text index for SQL dialect {dialect!r}")
    return found


def for_dialect(dialect: str, analyzer: str) -> LexicalSearch:
    """Lexical search on ``dialect`` with ``analyzer`` (refused if it cannot run there)."""
    return _class_for(dialect)(analyzer)


def engine_analyzer(dialect: str, analyzer: str) -> str:
    """What ``analyzer`` is on this backend: an FTS5 tokenizer or a PostgreSQL regconfig."""
    return _class_for(dialect).resolve(analyzer)


def describe(dialect: str, analyzer: str) -> str:
    return for_dialect(dialect, analyzer).describe()


def install(conn: Connection, analyzer: str = DEFAULT_ANALYZER) -> None:
    """Create the full-text index for ``analyzer`` and fill it from the stored pages.

    Replaces an existing one (a new store choosing another analyzer). Runs in the
    caller's transaction. Also what a migration that rebuilds ``ls_pages`` in SQLite
    batch mode must call afterwards, since a table copy drops its triggers.
    """
    search = for_dialect(conn.dialect.name, analyzer)
    search.remove(conn)
    search.install(conn)


def remove(conn: Connection) -> None:
    found = dialects().get(conn.dialect.name)
    if found is not None:
        found.remove(conn)


def query_terms(query: str) -> list[str]:
    """The word runs of ``query``, first occurrence first, at most ``MAX_TERMS``.

    Examples
    --------
    >>> query_terms('"part-7" OR NEAR(a*, b) -c: Zürich part')
    ['part', '7', 'OR', 'NEAR', 'a', 'b', 'c', 'Zürich']
    """
    seen: dict[str, None] = {}
    for word in WORD.findall(query):
        seen.setdefault(word, None)
        if len(seen) == MAX_TERMS:
            break
    return list(seen)
