"""PostgreSQL's full-text search: a generated ``tsvector`` column, ranked by BM25.

``ts_rank`` weighs every matching word the same, however common it is: measured as
the hybrid mode's lexical side it made hybrid lose to MaxSim alone on two of four
collections (docs/ranking-quality.md). So the ranking is Okapi BM25, computed in SQL
with FTS5's formula (k1 = 1.2, b = 0.75, ``idf = ln((N - df + 0.5) / (df + 0.5))``,
at least 1e-6), so both backends rank alike up to their analyzers:

* a page's length is its indexed tokens (``ls_pages.text_search_length``), ``N`` and
  the average length come from ``ls_fulltext_stats``, all kept by the database in the
  writing transaction (:mod:`latestore.store.fulltext_pg_stats`);
* ``df``, for the query's own lexemes only, is counted from the GIN index;
* a page's term frequency is the number of positions the ``tsvector`` holds for the
  lexeme (PostgreSQL keeps at most 256 per lexeme, and none past position 16,383).
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    Select,
    Text,
    bindparam,
    func,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy.orm import Session

from latestore.errors import InvalidInputError
from latestore.store.fulltext import INDEXED_CHARS, LexicalSearch
from latestore.store.fulltext_pg_stats import (
    LENGTH_COLUMN,
    corpus_size,
    install_statistics,
    remove_statistics,
)
from latestore.store.schema import PageRow

__all__ = ["BM25_B", "BM25_K1", "TSV_COLUMN", "TsvectorSearch", "bm25_idf"]

TSV_COLUMN = "text_search"
BM25_K1 = 1.2
BM25_B = 0.75
_tsv: ColumnElement[Any] = literal_column(f"ls_pages.{TSV_COLUMN}")
_length: ColumnElement[Any] = literal_column(f"ls_pages.{LENGTH_COLUMN}")


def bm25_idf(pages: int, frequency: int) -> float:
    """FTS5's BM25 inverse document frequency of a term found in ``frequency`` of
    ``pages`` pages (a term in more than half of them still counts a little)."""
    idf = math.log((pages - frequency + 0.5) / (frequency + 0.5))
    return idf if idf > 0.0 else 1e-6


class TsvectorSearch(LexicalSearch):
    """A stored generated ``tsvector`` column of ``ls_pages`` with a GIN index."""

    dialect = "postgresql"

    @classmethod
    def _engine_name(cls, analyzer: str) -> str:
        # A regconfig of the server: install() checks it exists (it needs a connection).
        return analyzer

    def describe(self) -> str:
        return f"{self.analyzer} (PostgreSQL regconfig {self.analyzer}, bm25)"

    def install(self, conn: Connection) -> None:
        regconfig = self.engine_analyzer
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
        install_statistics(conn)

    @classmethod
    def remove(cls, conn: Connection) -> None:
        remove_statistics(conn)  # its column and triggers read text_search
        conn.exec_driver_sql(f"ALTER TABLE ls_pages DROP COLUMN IF EXISTS {TSV_COLUMN}")

    def _ranked(self, session: Session, terms: list[str], phrase: list[str]) -> Select[Any] | None:
        lexemes = self.lexemes(session, terms)
        if not lexemes:
            return None  # only stop words
        pages, total = corpus_size(session)
        frequencies = self._frequencies(session, lexemes)
        idf = [bm25_idf(pages, f) for f in frequencies]
        average = total / pages if total else 1.0
        score = self._bm25(lexemes, idf, average).label("score")
        statement = select(PageRow.id, score).where(_tsv.op("@@")(_any_lexeme(lexemes)))
        if phrase:
            statement = statement.where(_tsv.op("@@")(self._phrase_query(phrase)))
        return statement.order_by(literal_column("score").desc(), PageRow.id)

    def lexemes(self, session: Session, terms: list[str]) -> list[str]:
        """The analyzer's lexemes of ``terms``, stop words dropped, sorted."""
        found = session.execute(
            text("SELECT lexeme FROM unnest(to_tsvector(CAST(:config AS regconfig), :words))"),
            {"config": self.analyzer, "words": " ".join(terms)},
        )
        return sorted(str(word) for word in found.scalars())

    @staticmethod
    def _frequencies(session: Session, lexemes: list[str]) -> list[int]:
        # One GIN lookup per lexeme: the work grows with the query's terms and their
        # postings, never with the whole table.
        rows = session.execute(
            text(
                "SELECT (SELECT count(*) FROM ls_pages WHERE text_search @@ t.q) "
                "FROM unnest(CAST(:queries AS tsquery[])) WITH ORDINALITY AS t(q, i) ORDER BY i"
            ),
            {"queries": [_quoted(word) for word in lexemes]},
        )
        return [int(n) for n in rows.scalars()]

    @staticmethod
    def _bm25(lexemes: list[str], idf: list[float], average: float) -> ColumnElement[Any]:
        """The page's BM25 score: a subquery over the positions of the query's lexemes,
        cut out of its tsvector (weight them A, keep the A's) without unpacking it."""
        words = bindparam("bm25_lexemes", lexemes, type_=_text_array())
        weights = (
            func.unnest(words, bindparam("bm25_idf", idf, type_=_float_array()))
            .table_valued("lexeme", "idf")
            .render_derived(name="q")
        )
        found = (
            func.unnest(
                func.ts_filter(
                    func.setweight(_tsv, literal_column("'A'"), words), literal_column("'{a}'")
                )
            )
            .table_valued("lexeme", "positions")
            .render_derived(name="m")
        )
        # A lexeme without positions (a stripped vector) still occurs once.
        tf = func.greatest(func.cardinality(found.c.positions), 1)
        norm = BM25_K1 * (1 - BM25_B + BM25_B * _length / literal(average, Float))
        term = weights.c.idf * tf * (BM25_K1 + 1) / (tf + norm)
        return (
            select(func.coalesce(func.sum(term), 0.0))
            .select_from(found.join(weights, found.c.lexeme == weights.c.lexeme))
            .scalar_subquery()
        )

    def _containing(self, words: list[str]) -> Select[Any]:
        return select(PageRow.id).where(_tsv.op("@@")(self._phrase_query(words)))

    def _restricted(
        self, statement: Select[Any], allowed: ColumnElement[bool] | None
    ) -> Select[Any]:
        # The tsvector is a column of ls_pages itself: the filter applies directly.
        return statement if allowed is None else statement.where(allowed)

    def _config(self) -> ColumnElement[str]:
        # Imported here: every store's open loads this module (the dialect table), and
        # the PostgreSQL dialect costs a SQLite store's cold open about 60 ms.
        from sqlalchemy.dialects.postgresql import REGCONFIG

        return literal(self.analyzer).cast(REGCONFIG)

    def _phrase_query(self, words: list[str]) -> ColumnElement[str]:
        return func.phraseto_tsquery(self._config(), " ".join(words))


def _quoted(lexeme: str) -> str:
    """``lexeme`` as a tsquery of that one lexeme, taken verbatim (never parsed again)."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def _any_lexeme(lexemes: list[str]) -> ColumnElement[Any]:
    # Built from the analyzer's own lexemes, each quoted: the user's text is never
    # tsquery syntax.
    query = " | ".join(_quoted(word) for word in lexemes)
    return literal(query).cast(_tsquery())


def _text_array() -> Any:
    from sqlalchemy.dialects.postgresql import ARRAY

    return ARRAY(Text)


def _float_array() -> Any:
    from sqlalchemy.dialects.postgresql import ARRAY

    return ARRAY(Float)


def _tsquery() -> Any:
    from sqlalchemy.dialects.postgresql import TSQUERY

    return TSQUERY()
