"""SQLite's full-text search: an external-content FTS5 table ranked by bm25."""

from __future__ import annotations

from collections.abc import Sequence
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
)
from sqlalchemy.orm import Session

from latestore.errors import InvalidInputError
from latestore.store.fulltext import INDEXED_CHARS, LexicalSearch
from latestore.store.schema import PageRow

__all__ = ["FTS5_TOKENIZERS", "FTS_TABLE", "Fts5Search", "fts5_any"]

FTS_TABLE = "ls_pages_fts"
# Analyzer name -> FTS5 tokenizer. "english": Porter stemming over Unicode words with
# diacritics folded; "simple": the same words unstemmed; "trigram": substrings.
FTS5_TOKENIZERS = {
    "english": "porter unicode61 remove_diacritics 2",
    "simple": "unicode61 remove_diacritics 2",
    "trigram": "trigram",
}
_TRIGGERS = ("ls_pages_fts_insert", "ls_pages_fts_delete", "ls_pages_fts_update")
_FTS_ROWID: ColumnElement[Any] = literal_column(f"{FTS_TABLE}.rowid")


class Fts5Search(LexicalSearch):
    """An FTS5 table over ``ls_pages.text``, kept in step by three triggers."""

    dialect = "sqlite"

    @classmethod
    def _engine_name(cls, analyzer: str) -> str:
        if analyzer not in FTS5_TOKENIZERS:
            raise InvalidInputError(
                f"text_analyzer {analyzer!r} is not available on SQLite (FTS5 stems English "
                f"only); choose one of {sorted(FTS5_TOKENIZERS)}"
            )
        return FTS5_TOKENIZERS[analyzer]

    def describe(self) -> str:
        return f"{self.analyzer} (FTS5 tokenize='{self.engine_analyzer}', bm25)"

    def install(self, conn: Connection) -> None:
        indexed = f"substr({{row}}.text, 1, {INDEXED_CHARS})"
        conn.exec_driver_sql(
            f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(text, content='ls_pages', "
            f"content_rowid='id', tokenize='{self.engine_analyzer}')"
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

    @classmethod
    def remove(cls, conn: Connection) -> None:
        for name in _TRIGGERS:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {FTS_TABLE}")

    def _ranked(self, session: Session, terms: list[str], phrase: list[str]) -> Select[Any]:
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

    def _containing(self, words: list[str]) -> Select[Any]:
        return (
            select(_FTS_ROWID)
            .select_from(table(FTS_TABLE))
            .where(_fts_match(_fts5_string(" ".join(words))))
        )

    def _restricted(
        self, statement: Select[Any], allowed: ColumnElement[bool] | None
    ) -> Select[Any]:
        if allowed is None:
            return statement
        # The FTS table is apart from ls_pages: joined to the filtered pages by id.
        return statement.where(_FTS_ROWID.in_(select(PageRow.id).where(allowed)))


def _fts5_string(words: str) -> str:
    """An FTS5 string literal: the engine reads it as plain words (a phrase)."""
    return '"' + words.replace('"', '""') + '"'


def fts5_any(terms: Sequence[str]) -> str:
    return " OR ".join(_fts5_string(term) for term in terms)


def _fts_match(expression: str) -> ColumnElement[bool]:
    return literal_column(FTS_TABLE).op("MATCH")(literal(expression))
