"""The search table's snippets: the text around MaxSim's best-matching tokens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from latestore import Page
from latestore.cli import app
from latestore.cli.snippets import (
    Mark,
    best_window,
    maxsim_marks,
    placeable,
    render,
    snippets,
    word_marks,
)
from tests.helpers import precomputed_store, unit_vectors

HEADER = "FEDERAL REGISTER Vol. 85 Proposed Rules. "
FILLER = "The committee met on Tuesday and approved the minutes of the previous meeting. " * 12
TARGET = "Propeller blades made of carbon fibre resist fatigue cracking in icing conditions."


def test_best_window_holds_the_most_weight() -> None:
    marks = [Mark(5, 9, 0.1), Mark(500, 505, 0.5), Mark(530, 536, 0.4), Mark(900, 904, 0.3)]
    start, end = best_window(marks, 1000, width=80)
    assert end - start == 80
    assert start <= 500 and end >= 536  # the two heaviest marks, together
    assert best_window([], 1000, width=80) == (0, 80)
    assert best_window(marks, 50, width=80) == (0, 50)


def test_render_bolds_marks_and_collapses_whitespace() -> None:
    text = "alpha   beta\n\ngamma delta " + "x" * 300
    shown = render(text, [Mark(8, 12, 1.0), Mark(14, 19, 0.5)], width=60)
    assert shown.plain.startswith("alpha beta gamma delta")
    assert shown.plain.endswith("…")
    bold = [shown.plain[s.start : s.end] for s in shown.spans if s.style == "bold"]
    assert bold == ["beta", "gamma"]


def test_word_marks_match_whole_query_words_in_any_case() -> None:
    text = "Wind tunnels and WINDOWS; the wind blew."
    found = [text[m.start : m.end] for m in word_marks(text, "wind tunnel")]
    assert found == ["Wind", "wind"]


def test_cli_snippet_shows_the_matching_passage_not_the_page_start(
    tmp_path: Path, runner: CliRunner
) -> None:
    # Issue 13: the table cut every page to its first characters (a running header).
    page = tmp_path / "report.txt"
    page.write_text(HEADER + FILLER + TARGET + " " + FILLER)
    other = tmp_path / "other.txt"
    other.write_text(HEADER + FILLER)
    db = str(tmp_path / "s.db")
    ingested = runner.invoke(app, ["ingest", str(page), str(other), "--store", db, "--json"])
    assert ingested.exit_code == 0, ingested.output
    for mode in ("maxsim", "lexical", "hybrid"):
        result = runner.invoke(
            app,
            ["search", "carbon fibre propeller blades", "--store", db, "--json", "--mode", mode],
        )
        assert result.exit_code == 0, result.output
        hits = json.loads(result.stdout)
        top = hits[0]
        assert top["document_id"].endswith("report.txt"), mode
        assert "carbon fibre" in top["snippet"], (mode, top["snippet"])
        assert HEADER.strip() not in top["snippet"], mode
    table = runner.invoke(app, ["search", "carbon fibre propeller blades", "--store", db])
    assert table.exit_code == 0 and "carbon fibre" in table.stdout


def test_maxsim_marks_come_from_the_argmax_tokens(tmp_path: Path, runner: CliRunner) -> None:
    from latestore import Store

    page = tmp_path / "report.txt"
    page.write_text(HEADER + FILLER + TARGET)
    db = str(tmp_path / "s.db")
    assert runner.invoke(app, ["ingest", str(page), "--store", db]).exit_code == 0
    with Store.open(db) as store:
        query = store.encode_queries(["propeller fatigue"])[0]
        hit = store.search(query, k=1)[0]
        assert placeable(store, hit)
        marks = maxsim_marks(store, query, hit, store.page_vectors(hit.page_id))
        assert marks, "a MiniLM text page has derivable token positions"
        words = {(hit.text or "")[m.start : m.end].lower() for m in marks}
        assert {"propeller", "fatigue"} & words


def test_pages_with_caller_vectors_fall_back_to_query_words(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with precomputed_store(tmp_path / "s.db", dim=8) as store:
        store.add_pages([Page(text=HEADER + TARGET, vectors=unit_vectors(rng, 4, 8))])
        query = unit_vectors(rng, 2, 8)
        hit = store.search(query, k=1)[0]
        assert not placeable(store, hit)
        (shown,) = snippets(store, "carbon fibre", query, [hit])
        bold = [shown.plain[span.start : span.end] for span in shown.spans]
        assert bold == ["carbon", "fibre"]  # the query's words, not MaxSim tokens


def test_snippets_read_every_hit_s_vectors_at_once_and_skip_deleted_pages(
    tmp_path: Path, runner: CliRunner
) -> None:
    from sqlalchemy import event

    from latestore import Store
    from latestore.store.reader import still_stored

    for i in range(4):
        (tmp_path / f"p{i}.txt").write_text(f"{HEADER}{FILLER[: 40 * (i + 1)]}{TARGET}")
    db = str(tmp_path / "s.db")
    assert runner.invoke(app, ["ingest", str(tmp_path), "--store", db]).exit_code == 0
    with Store.open(db) as store:
        query = store.encode_queries(["propeller fatigue"])[0]
        hits = store.search(query, k=4)
        assert len(hits) == 4
        store.delete([hits[1].page_id])  # deleted between ranking and display
        reads: list[str] = []

        def count(conn: object, cursor: object, statement: str, *rest: object) -> None:
            if "ls_page_vectors" in statement:
                reads.append(statement)

        event.listen(store._db.engine, "before_cursor_execute", count)
        shown = snippets(store, "propeller fatigue", query, hits)
        event.remove(store._db.engine, "before_cursor_execute", count)
        assert len(reads) == 2  # one read, and one again without the deleted page
        assert set(still_stored(store.page_vectors_many, [h.page_id for h in hits])) == {
            h.page_id for h in hits if h is not hits[1]
        }
        for text in shown:
            assert "Propeller" in text.plain or "propeller" in text.plain.lower()
