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
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    func,
    literal,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.orm import Session

from latestore.errors import InvalidInputError
from latestore.store.schema import PageRow

FTS_TABLE = "ls_pages_fts"
TSV_COLUMN = "text_search"
INDEXED_CHARS = 200_000
# Word runs of one query that reach the engine: more add nothing to a ranking.
MAX_TERMS = 256
DEFAULT_ANALYZER = "english"
# ts_rank's normalisation flag: 1 divides the rank by 1 + log(page length).
PG_RANK_NORMALIZATION = 1

# Analyzer name -> FTS5 tokenizer. "english": Porter stemming over Unicode words with
# diacritics folded; "simple": the same words unstemmed; "trigram": substrings.
FTS5_TOKENIZERS = {
    "english": "porter unicode61 remove_diacritics 2",
    "simple": "unicode61 remove_diacritics 2",
    "trigram": "trigram",
}
_ANALYZER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_WORD = re.compile(r"\w+")
_TRIGGERS = ("ls_pages_fts_insert", "ls_pages_fts_delete", "ls_pages_fts_update")


@dataclass(frozen=True)
class LexicalHit:
    page_id: int
    score: float  # higher is better: -bm25() on SQLite, ts_rank on PostgreSQL


def engine_analyzer(dialect: str, analyzer: str) -> str:
    """What ``analyzer`` is on this backend: an FTS5 tokenizer or a PostgreSQL regconfig.

    The name goes into DDL (neither engine takes a bound parameter there), so it is
    checked against a strict pattern and, on SQLite, a fixed table.
    """
    if not _ANALYZER_NAME.match(analyzer):
        raise InvalidInputError(
            f"text_analyzer must be a lowercase name such as 'english' or 'simple', "
            f"got {analyzer!r:.80}"
        )
    if dialect == "sqlite":
        if analyzer not in FTS5_TOKENIZERS:
            raise InvalidInputError(
                f"text_analyzer {analyzer!r} is not available on SQLite (FTS5 stems English "
                f"only); choose one of {sorted(FTS5_TOKENIZERS)}"
            )
        return FTS5_TOKENIZERS[analyzer]
    return analyzer


def describe(dialect: str, analyzer: str) -> str:
    """The analyzer as `latestore info` shows it: the name and what the engine runs."""
    if dialect == "sqlite":
        return f"{analyzer} (FTS5 tokenize='{engine_analyzer(dialect, analyzer)}', bm25)"
    return f"{analyzer} (PostgreSQL regconfig {analyzer}, ts_rank normalisation 1)"


def install(conn: Connection, analyzer: str = DEFAULT_ANALYZER) -> None:
    """Create the full-text index for ``analyzer`` and fill it from the stored pages.

    Replaces an existing one (a new store choosing another analyzer). Runs in the
    caller's transaction. Also what a migration that rebuilds ``ls_pages`` in SQLite
    batch mode must call afterwards, since a table copy drops its triggers.
    """
    dialect = conn.dialect.name
    spec = engine_analyzer(dialect, analyzer)
    remove(conn)
    if dialect == "sqlite":
        _install_fts5(conn, spec)
    elif dialect == "postgresql":
        _install_tsvector(conn, spec)
    else:
        raise InvalidInputError(f"no full-text index for SQL dialect {dialect!r}")


def remove(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        for name in _TRIGGERS:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {FTS_TABLE}")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"ALTER TABLE ls_pages DROP COLUMN IF EXISTS {TSV_COLUMN}")


def _install_fts5(conn: Connection, tokenizer: str) -> None:
    indexed = f"substr({{row}}.text, 1, {INDEXED_CHARS})"
    conn.exec_driver_sql(
        f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(text, content='ls_pages', "
        f"content_rowid='id', tokenize='{tokenizer}')"
    )
    # An external-content table must be told the old values to delete exactly what
    # was indexed, so every trigger passes the same prefix.
    add = f"INSERT INTO {FTS_TABLE}(rowid, text) VALUES (new.id, {indexed.format(row='new')});"
    drop = (
        f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, text) "
        f"VALUES ('delete', old.id, {indexed.format(row='old')});"
    )
    conn.exec_driver_sql(
        f"CREATE TRIGGER ls_pages_fts_insert AFTER INSERT ON ls_pages BEGIN {add} END"
    )
    conn.exec_driver_sql(
        f"CREATE TRIGGER ls_pages_fts_delete AFTER DELETE ON ls_pages BEGIN {drop} END"
    )
    conn.exec_driver_sql(
        f"CREATE TRIGGER ls_pages_fts_update AFTER UPDATE OF text ON ls_pages "
        f"BEGIN {drop} {add} END"
    )
    conn.exec_driver_sql(
        f"INSERT INTO {FTS_TABLE}(rowid, text) "
        f"SELECT id, substr(text, 1, {INDEXED_CHARS}) FROM ls_pages WHERE text IS NOT NULL"
    )


def _install_tsvector(conn: Connection, regconfig: str) -> None:
    known = conn.execute(
        text("SELECT count(*) FROM pg_ts_config WHERE cfgname = :name"), {"name": regconfig}
    ).scalar_one()
    if not known:
        names = conn.execute(text("SELECT cfgname FROM pg_ts_config ORDER BY 1")).scalars()
        raise InvalidInputError(
            f"text_analyzer {regconfig!r} is not a text search configuration of this "
            f"PostgreSQL server; it has {list(names)}"
        )
    # Adding a stored generated column rewrites the table: that is the backfill.
    conn.exec_driver_sql(
        f"ALTER TABLE ls_pages ADD COLUMN {TSV_COLUMN} tsvector GENERATED ALWAYS AS "
        f"(to_tsvector('{regconfig}'::regconfig, left(coalesce(text, ''), {INDEXED_CHARS}))) "
        "STORED"
    )
    conn.exec_driver_sql(
        f"CREATE INDEX ix_ls_pages_{TSV_COLUMN} ON ls_pages USING gin ({TSV_COLUMN})"
    )


def query_terms(query: str) -> list[str]:
    """The word runs of ``query``, first occurrence first, at most ``MAX_TERMS``.

    Examples
    --------
    >>> query_terms('"part-7" OR NEAR(a*, b) -c: Zürich part')
    ['part', '7', 'OR', 'NEAR', 'a', 'b', 'c', 'Zürich']
    """
    seen: dict[str, None] = {}
    for word in _WORD.findall(query):
        seen.setdefault(word, None)
        if len(seen) == MAX_TERMS:
            break
    return list(seen)


def _fts5_string(words: str) -> str:
    """An FTS5 string literal: the engine reads it as plain words (a phrase)."""
    return '"' + words.replace('"', '""') + '"'


def fts5_any(terms: Sequence[str]) -> str:
    return " OR ".join(_fts5_string(term) for term in terms)


class LexicalSearch:
    """Lexical queries over one store's full-text index, as SQLAlchemy statements."""

    def __init__(self, dialect: str, analyzer: str) -> None:
        self.dialect = dialect
        self.analyzer = analyzer
        engine_analyzer(dialect, analyzer)  # refuse a name this backend cannot run

    def describe(self) -> str:
        return describe(self.dialect, self.analyzer)

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
        phrase = _WORD.findall(exact) if exact is not None else []
        if not terms or (exact is not None and not phrase):
            return []
        statement = self._restricted(self._ranked(terms, phrase), allowed)
        rows = session.execute(statement.limit(n))
        return [LexicalHit(int(page_id), float(score)) for page_id, score in rows]

    def containing(
        self, session: Session, phrase: str, allowed: ColumnElement[bool] | None = None
    ) -> list[int]:
        """Ids of the pages that contain ``phrase`` (after the analyzer), ascending."""
        words = _WORD.findall(phrase)
        if not words:
            return []
        statement: Select[Any]
        if self.dialect == "sqlite":
            statement = (
                select(_FTS_ROWID)
                .select_from(table(FTS_TABLE))
                .where(_fts_match(_fts5_string(" ".join(words))))
            )
        else:
            statement = select(PageRow.id).where(_tsv.op("@@")(self._phrase_query(words)))
        statement = self._restricted(statement, allowed)
        return sorted(int(i) for i in session.execute(statement).scalars())

    def _restricted(
        self, statement: Select[Any], allowed: ColumnElement[bool] | None
    ) -> Select[Any]:
        if allowed is None:
            return statement
        if self.dialect == "sqlite":  # the FTS table joined to the filtered pages by id
            return statement.where(_FTS_ROWID.in_(select(PageRow.id).where(allowed)))
        return statement.where(allowed)  # the tsvector is a column of ls_pages itself

    def _ranked(self, terms: list[str], phrase: list[str]) -> Select[Any]:
        if self.dialect == "sqlite":
            expression = f"({fts5_any(terms)})"
            if phrase:
                expression += f" AND {_fts5_string(' '.join(phrase))}"
            # bm25() is lower-is-better; negated, every mode's scores grow with relevance.
            score = (-func.bm25(literal_column(FTS_TABLE))).label("score")
            return (
                select(_FTS_ROWID.label("page_id"), score)
                .select_from(table(FTS_TABLE))
                .where(_fts_match(expression))
                .order_by(score.desc(), _FTS_ROWID)
            )
        tsquery = self._any_query(terms)
        # ts_rank with normalisation 1 (divided by 1 + log of the page's length), not
        # ts_rank_cd: for ORed words cover density counts every occurrence of any word,
        # and ranked SciFact at nDCG@10 0.324 against 0.598 (Cranfield 0.240 / 0.322).
        score = func.ts_rank(_tsv, tsquery, PG_RANK_NORMALIZATION).label("score")
        statement = select(PageRow.id, score).where(_tsv.op("@@")(tsquery))
        if phrase:
            statement = statement.where(_tsv.op("@@")(self._phrase_query(phrase)))
        return statement.order_by(literal_column("score").desc(), PageRow.id)

    def _config(self) -> ColumnElement[str]:
        # Imported here: the PostgreSQL dialect costs a SQLite store's every open 60 ms.
        from sqlalchemy.dialects.postgresql import REGCONFIG

        return literal(self.analyzer).cast(REGCONFIG)

    def _any_query(self, terms: list[str]) -> ColumnElement[str]:
        # Built here from word runs only (no quote, backslash or operator can occur in
        # one), each a quoted lexeme, ORed; the user's own text is never a tsquery.
        return func.to_tsquery(self._config(), " | ".join(f"'{term}'" for term in terms))

    def _phrase_query(self, words: list[str]) -> ColumnElement[str]:
        return func.phraseto_tsquery(self._config(), " ".join(words))


_tsv: ColumnElement[Any] = literal_column(f"ls_pages.{TSV_COLUMN}")
_FTS_ROWID: ColumnElement[Any] = literal_column(f"{FTS_TABLE}.rowid")


def _fts_match(expression: str) -> ColumnElement[bool]:
    return literal_column(FTS_TABLE).op("MATCH")(literal(expression))
