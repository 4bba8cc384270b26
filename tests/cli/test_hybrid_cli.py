"""`latestore search --mode/--exact`, `info` (the analyzer) and `evaluate --mode`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from latestore.cli import app

PASSAGES = [
    "The XJ-9000 pump needs a new gasket every spring.",
    "Rotor blades stall at high angles of attack.",
    "Heat shields protect capsules during reentry.",
]


def filled_store(tmp_path: Path, runner: CliRunner) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i, passage in enumerate(PASSAGES):
        (folder / f"p{i}.txt").write_text(passage)
    db = tmp_path / "s.db"
    result = runner.invoke(app, ["ingest", str(folder), "--store", str(db), "--json"])
    assert result.exit_code == 0, result.output
    return db


def search(runner: CliRunner, db: Path, *args: str) -> list[dict[str, object]]:
    result = runner.invoke(app, ["search", *args, "--store", str(db), "--json"])
    assert result.exit_code == 0, result.output
    hits: list[dict[str, object]] = json.loads(result.stdout)
    return hits


def test_search_modes_and_exact_phrase(tmp_path: Path, runner: CliRunner) -> None:
    db = filled_store(tmp_path, runner)
    lexical = search(runner, db, "XJ-9000 (pump) OR gasket*", "--mode", "lexical")
    assert len(lexical) == 1 and "XJ-9000" in str(lexical[0]["text"])
    assert lexical[0]["signals"] == ["lexical"] and lexical[0]["lexical_rank"] == 1
    hybrid = search(runner, db, "pump gasket", "--mode", "hybrid", "-k", "3")
    assert len(hybrid) == 3 and hybrid[0]["signals"] == ["maxsim", "lexical"]
    assert all(h["maxsim_score"] is not None for h in hybrid)
    default = search(runner, db, "pump gasket", "-k", "3")
    assert all(h["signals"] == ["maxsim"] for h in default)
    phrase = search(runner, db, "spacecraft", "--exact", "heat shields", "-k", "3")
    assert [h["text"] for h in phrase] == [PASSAGES[2]]
    table = runner.invoke(app, ["search", "pump", "--store", str(db), "--mode", "hybrid"])
    assert table.exit_code == 0 and "maxsim+lexical" in table.stdout
    wrong = runner.invoke(app, ["search", "pump", "--store", str(db), "--mode", "bm25"])
    assert wrong.exit_code == 2


def test_info_shows_the_text_analyzer(tmp_path: Path, runner: CliRunner) -> None:
    db = filled_store(tmp_path, runner)
    result = runner.invoke(app, ["info", "--store", str(db), "--json"])
    assert result.exit_code == 0, result.output
    details = json.loads(result.stdout)
    assert details["text_analyzer"].startswith("english (FTS5 tokenize='porter unicode61")
    assert details["search_settings"]["search_mode"] == "maxsim"


def test_evaluate_each_mode_on_one_store(tmp_path: Path, runner: CliRunner) -> None:
    corpus = [("d1", PASSAGES[1]), ("d2", "Cranberry sauce recipes."), ("d3", PASSAGES[2])]
    (tmp_path / "corpus.jsonl").write_text(
        "".join(json.dumps({"id": i, "title": "", "text": t}) + "\n" for i, t in corpus)
    )
    (tmp_path / "queries.jsonl").write_text(
        json.dumps({"id": "q1", "text": "why do rotor blades stall"})
        + "\n"
        + json.dumps({"id": "q2", "text": "spacecraft thermal insulation"})
        + "\n"
    )
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n")
    args = ["evaluate", str(tmp_path), "--mode", "maxsim", "--mode", "lexical", "--mode", "hybrid"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert list(report["modes"]) == ["maxsim", "lexical", "hybrid"]
    assert report["default"] == report["modes"]["maxsim"]["default"]
    # q1 shares "rotor", "blades", "stall" with d1; q2 shares no word with d3.
    assert report["modes"]["lexical"]["default"]["mrr10"] == 0.5
    assert report["modes"]["hybrid"]["exhaustive"]["mrr10"] == 1.0
    table = runner.invoke(app, [*args[:2], "--mode", "lexical"])
    assert table.exit_code == 0 and "mode lexical" in table.stdout
