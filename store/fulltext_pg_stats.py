"""Page lengths and corpus statistics of PostgreSQL's full-text index, for BM25.

BM25 needs each page's length, the number of indexed pages and their average length;
``ts_rank`` has none of these. So the database keeps

* ``ls_pages.text_search_length``: the page's indexed tokens (every position its
  ``tsvector`` holds, stop words left out), a stored generated column computed from
  the same expression as ``text_search``, by the ``ls_tsvector_tokens`` function;
* ``ls_fulltext_stats``: the number of pages and the sum of their lengths, updated by
  triggers on ``ls_pages``.

Both change in the transaction that writes the page rows: an add, upsert, text update
or delete changes them exactly when it commits, and a rolled-back or crashed write
leaves them as they were. No write path of latestore mentions them. Per-term document
frequencies are not kept: a query counts them for its own terms from the GIN index.

The sums are spread over ``SLOTS`` rows, one per writing backend (its process id
modulo ``SLOTS``), so two sessions writing at once seldom wait on the same row lock;
a query adds the rows up.
"""

from __future__ import annotations

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

__all__ = [
    "LENGTH_COLUMN",
    "SLOTS",
    "STATS_TABLE",
    "corpus_size",
    "install_statistics",
    "remove_statistics",
]

STATS_TABLE = "ls_fulltext_stats"
LENGTH_COLUMN = "text_search_length"
SLOTS = 64
_FUNCTION = "ls_fulltext_count"
_TOKENS = "ls_tsvector_tokens"
# A lexeme stored without positions (a stripped vector) counts once. PostgreSQL keeps
# at most 256 positions per lexeme, and none past position 16,383.
_TOKENS_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {_TOKENS}(tsvector) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT coalesce(sum(greatest(cardinality(positions), 1)), 0)::integer FROM unnest($1) $$
"""
_TRIGGERS = ("ls_pages_fulltext_insert", "ls_pages_fulltext_delete", "ls_pages_fulltext_update")

# Inserts and deletes are counted once per statement from its transition table (a batch
# of 500 pages is one update of one row); an update of a page's text, once per row.
_COUNT_FUNCTION = f"""
CREATE FUNCTION {_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d_pages bigint := 0;
    d_tokens bigint := 0;
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        d_tokens := NEW.{LENGTH_COLUMN} - OLD.{LENGTH_COLUMN};
    ELSIF TG_OP = 'INSERT' THEN
        SELECT count(*), coalesce(sum({LENGTH_COLUMN}), 0)
            INTO d_pages, d_tokens FROM ls_new_pages;
    ELSE
        SELECT -count(*), -coalesce(sum({LENGTH_COLUMN}), 0)
            INTO d_pages, d_tokens FROM ls_old_pages;
    END IF;
    IF d_pages <> 0 OR d_tokens <> 0 THEN
        UPDATE {STATS_TABLE} SET pages = pages + d_pages, tokens = tokens + d_tokens
            WHERE slot = mod(pg_backend_pid(), {SLOTS});
    END IF;
    RETURN NULL;
END
$$
"""


def install_statistics(conn: Connection) -> None:
    """Create the page lengths, the statistics and their triggers, and fill them from
    the stored pages.

    Replaces existing ones. Needs the ``text_search`` column: the length column is
    computed from the same expression (read back from the catalog, so it follows the
    store's analyzer). Runs in the caller's transaction.
    """
    remove_statistics(conn)
    expression = conn.execute(
        text(
            "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_attribute a "
            "ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
            "WHERE d.adrelid = 'ls_pages'::regclass AND a.attname = 'text_search'"
        )
    ).scalar_one()
    conn.exec_driver_sql(_TOKENS_FUNCTION)
    # A stored generated column may not read another one: it runs the analyzer again.
    conn.exec_driver_sql(
        f"ALTER TABLE ls_pages ADD COLUMN {LENGTH_COLUMN} integer GENERATED ALWAYS AS "
        f"({_TOKENS}({expression})) STORED"
    )
    conn.exec_driver_sql(
        f"CREATE TABLE {STATS_TABLE} (slot smallint PRIMARY KEY, "
        "pages bigint NOT NULL DEFAULT 0, tokens bigint NOT NULL DEFAULT 0)"
    )
    conn.exec_driver_sql(f"INSERT INTO {STATS_TABLE} (slot) SELECT generate_series(0, {SLOTS - 1})")
    conn.exec_driver_sql(
        f"UPDATE {STATS_TABLE} SET (pages, tokens) = "
        f"(SELECT count(*), coalesce(sum({LENGTH_COLUMN}), 0) FROM ls_pages) WHERE slot = 0"
    )
    conn.exec_driver_sql(_COUNT_FUNCTION)
    insert, delete, update = _TRIGGERS
    conn.exec_driver_sql(
        f"CREATE TRIGGER {insert} AFTER INSERT ON ls_pages REFERENCING NEW TABLE AS "
        f"ls_new_pages FOR EACH STATEMENT EXECUTE FUNCTION {_FUNCTION}()"
    )
    conn.exec_driver_sql(
        f"CREATE TRIGGER {delete} AFTER DELETE ON ls_pages REFERENCING OLD TABLE AS "
        f"ls_old_pages FOR EACH STATEMENT EXECUTE FUNCTION {_FUNCTION}()"
    )
    conn.exec_driver_sql(
        f"CREATE TRIGGER {update} AFTER UPDATE OF text ON ls_pages FOR EACH ROW "
        f"WHEN (OLD.text IS DISTINCT FROM NEW.text) EXECUTE FUNCTION {_FUNCTION}()"
    )


def remove_statistics(conn: Connection) -> None:
    """Drop the statistics, their triggers and the page lengths, if there are any."""
    for name in _TRIGGERS:
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON ls_pages")
    conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {_FUNCTION}()")
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {STATS_TABLE}")
    conn.exec_driver_sql(f"ALTER TABLE ls_pages DROP COLUMN IF EXISTS {LENGTH_COLUMN}")
    conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {_TOKENS}(tsvector)")


def corpus_size(session: Session) -> tuple[int, int]:
    """(pages, their indexed tokens in all) as the index holds them now."""
    pages, tokens = session.execute(
        text(f"SELECT coalesce(sum(pages), 0), coalesce(sum(tokens), 0) FROM {STATS_TABLE}")
    ).one()
    return int(pages), int(tokens)
