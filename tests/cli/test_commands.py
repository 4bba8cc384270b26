"""Changed files, metadata, delete, evaluate, help and README coverage (in-process)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from latestore.cli import app, parse_metadata
from latestore.cli.evaluate import gain_function
from latestore.ingest.sources import chunk_text, estimate_pages
from tests.cli.conftest import ROOT

COMMANDS = ["ingest", "search", "info", "list", "delete", "reindex", "evaluate", "serve"]


def ingest(runner: CliRunner, *args: str) -> dict[str, object]:
    result = runner.invoke(app, ["ingest", *args, "--json"])
    assert result.exit_code == 0, result.output
    summary: dict[str, object] = json.loads(result.stdout)
    return summary


def page_ids(db: Path, document: Path) -> dict[int, int]:
    with sqlite3.connect(db) as conn:
        found = conn.execute(
            "SELECT page_number, id FROM ls_pages WHERE document_id = ?", (document.as_posix(),)
        ).fetchall()
    return dict(found)


def test_changed_file_replaces_its_pages_in_place(tmp_path: Path, runner: CliRunner) -> None:
    doc, db = tmp_path / "doc.txt", str(tmp_path / "s.db")
    paragraphs = [
        f"Paragraph {i} about {topic} " * 4
        for i, topic in enumerate(["turbines", "flutter", "nozzles"])
    ]
    doc.write_text("\n\n".join(paragraphs))
    first = ingest(runner, str(doc), "--store", db, "--chunk-chars", "150")
    assert first["pages_added"] == 3
    before = page_ids(tmp_path / "s.db", doc.resolve())

    doc.write_text("A single new paragraph about wind tunnels.")
    second = ingest(runner, str(doc), "--store", db, "--chunk-chars", "150")
    assert (second["pages_updated"], second["pages_deleted"], second["pages_added"]) == (1, 2, 0)
    after = page_ids(tmp_path / "s.db", doc.resolve())
    assert after == {1: before[1]}  # page ids are stable; the stale pages are gone

    hits = json.loads(
        runner.invoke(app, ["search", "wind tunnels", "--store", db, "--json"]).stdout
    )
    assert [h["text"] for h in hits] == ["A single new paragraph about wind tunnels."]


def test_metadata_is_typed_and_filterable(tmp_path: Path, runner: CliRunner) -> None:
    (tmp_path / "a.md").write_text("Supersonic inlet design notes.")
    db = str(tmp_path / "s.db")
    ingest(runner, str(tmp_path / "a.md"), "--store", db, "-m", "year=1965", "-m", "team=aero")
    hits = json.loads(
        runner.invoke(
            app,
            ["search", "inlet", "--store", db, "--json", "--filter", '{"year": {"$gte": 1960}}'],
        ).stdout
    )
    assert hits[0]["metadata"]["year"] == 1965 and hits[0]["metadata"]["team"] == "aero"
    # Changing --metadata changes the pages: they are rewritten, not duplicated.
    again = ingest(runner, str(tmp_path / "a.md"), "--store", db, "-m", "year=1966")
    assert again["pages_updated"] == 1 and again["pages_added"] == 0

    clash = runner.invoke(
        app, ["ingest", str(tmp_path / "a.md"), "--store", db, "-m", "file_sha256=x"]
    )
    assert clash.exit_code == 2 and "set by ingestion" in clash.stderr
    assert parse_metadata(["n=1.5", "flag=true", "s=abc", "j=[1]"]) == {
        "n": 1.5,
        "flag": True,
        "s": "abc",
        "j": "[1]",
    }


def test_delete_by_document_external_id_and_page_id(tmp_path: Path, runner: CliRunner) -> None:
    for name in ("one", "two", "three"):
        (tmp_path / f"{name}.txt").write_text(f"Document {name} about propellers.")
    db = str(tmp_path / "s.db")
    ingest(runner, str(tmp_path), "--store", db)
    by_doc = runner.invoke(
        app, ["delete", "--store", db, "--document", str(tmp_path / "one.txt"), "--json"]
    )
    assert json.loads(by_doc.stdout) == {"deleted": 1, "pages": 2}
    external = f"{(tmp_path / 'two.txt').resolve().as_posix()}#page=1"
    by_ext = runner.invoke(app, ["delete", "--store", db, "--external-id", external, "--json"])
    assert json.loads(by_ext.stdout) == {"deleted": 1, "pages": 1}
    remaining = json.loads(
        runner.invoke(app, ["search", "propellers", "--store", db, "--json"]).stdout
    )
    by_id = runner.invoke(app, ["delete", "--store", db, "--id", str(remaining[0]["page_id"])])
    assert by_id.exit_code == 0 and "deleted 1 pages; 0 remain" in by_id.stdout
    assert runner.invoke(app, ["delete", "--store", db]).exit_code == 2
    # Re-ingesting restores exactly what was deleted.
    assert ingest(runner, str(tmp_path), "--store", db)["pages_added"] == 3
    unknown = runner.invoke(app, ["delete", "--store", db, "--filter", '{"colour": "red"}'])
    assert unknown.exit_code != 0 and "colour" in unknown.stderr
    # Ids with a bad filter: one transaction, so the ids are not deleted either.
    mixed = ["delete", "--store", db, "--document", str(tmp_path / "one.txt")]
    refused = runner.invoke(app, [*mixed, "--filter", '{"colour": "red"}', "--json"])
    assert refused.exit_code == 2 and "colour" in json.loads(refused.stdout)["error"]
    overlap = runner.invoke(app, [*mixed, "--filter", '{"file_name": "two.txt"}', "--json"])
    assert json.loads(overlap.stdout) == {"deleted": 2, "pages": 1}
    by_filter = runner.invoke(
        app, ["delete", "--store", db, "--filter", '{"file_type": "text"}', "--json"]
    )
    assert json.loads(by_filter.stdout) == {"deleted": 1, "pages": 0}
    # A delete that matched nothing says so and fails, unless that is expected.
    nothing = runner.invoke(app, ["delete", "--store", db, "--id", "99999"])
    assert nothing.exit_code == 1 and "no page matched" in nothing.stderr
    as_json = runner.invoke(app, ["delete", "--store", db, "--id", "99999", "--json"])
    assert as_json.exit_code == 1 and "no page matched" in json.loads(as_json.stdout)["error"]
    fine = runner.invoke(app, ["delete", "--store", db, "--id", "99999", "--missing-ok", "--json"])
    assert fine.exit_code == 0 and json.loads(fine.stdout) == {"deleted": 0, "pages": 0}


def test_reading_commands_refuse_a_missing_store(tmp_path: Path, runner: CliRunner) -> None:
    for args in (["search", "x"], ["info"], ["reindex"], ["delete", "--id", "1"]):
        result = runner.invoke(app, [*args, "--store", str(tmp_path / "none.db")])
        assert result.exit_code == 2 and "no store" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_evaluate_on_a_small_beir_folder(tmp_path: Path, runner: CliRunner) -> None:
    corpus = [
        ("d1", "Rotor blades stall at high angles of attack."),
        ("d2", "Cranberry sauce recipes for the holidays."),
        ("d3", "Heat shields protect capsules during reentry."),
    ]
    (tmp_path / "corpus.jsonl").write_text(
        "".join(json.dumps({"id": i, "title": "", "text": t}) + "\n" for i, t in corpus)
    )
    (tmp_path / "queries.jsonl").write_text(
        json.dumps({"id": "q1", "text": "why do rotor blades stall"})
        + "\n"
        + json.dumps({"id": "q2", "text": "capsule reentry heating"})
        + "\n"
    )
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n")
    result = runner.invoke(app, ["evaluate", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["documents"] == 3 and report["queries"] == 2
    assert report["exhaustive"]["mrr10"] == 1.0 and report["overlap10"] == 1.0
    assert report["page_windows"]["windows"] is True and report["pages_truncated"] == 0
    truncating = runner.invoke(app, ["evaluate", str(tmp_path), "--no-windows", "--json"])
    assert json.loads(truncating.stdout)["page_windows"] == {"windows": False}
    # --limit-docs 2 keeps d1 and d2: q2's only relevant document (d3) is out, so q2
    # is not scored (it would count as a miss), and the output says so.
    limited = runner.invoke(app, ["evaluate", str(tmp_path), "--limit-docs", "2", "--json"])
    subset = json.loads(limited.stdout)
    assert (subset["documents"], subset["queries"], subset["queries_dropped"]) == (2, 1, 1)
    assert subset["exhaustive"]["mrr10"] == 1.0
    shown = runner.invoke(app, ["evaluate", str(tmp_path), "--limit-docs", "2"])
    assert "1 of 2 judged queries kept" in shown.stdout and "1 left out" in shown.stdout
    table = runner.invoke(app, ["evaluate", str(tmp_path), "--store", str(tmp_path / "e.db")])
    assert table.exit_code == 0 and "nDCG@10" in table.stdout and "overlap@10" in table.stdout
    assert runner.invoke(app, ["evaluate", str(tmp_path / "nope")]).exit_code == 2
    # --encoder-dtype reaches the encoder: bf16 still ranks these right; a bad name fails.
    bf16 = runner.invoke(app, ["evaluate", str(tmp_path), "--encoder-dtype", "bfloat16", "--json"])
    assert bf16.exit_code == 0 and json.loads(bf16.stdout)["exhaustive"]["mrr10"] == 1.0
    bad = runner.invoke(app, ["evaluate", str(tmp_path), "--encoder-dtype", "float7", "--json"])
    assert bad.exit_code == 2 and "float7" in json.loads(bad.stdout)["error"]
    # No query left to score: refused before any encoding.
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td3\t1\n")
    refused = runner.invoke(app, ["evaluate", str(tmp_path), "--limit-docs", "1", "--json"])
    assert refused.exit_code == 2 and "raise --limit-docs" in json.loads(refused.stdout)["error"]


def test_gain_maps() -> None:
    cranfield = gain_function("cranfield")
    assert cranfield is not None
    assert [cranfield(c) for c in (1, 2, 3, 4, -1)] == [4, 3, 2, 1, 0]
    assert gain_function("identity") is None
    custom = gain_function("2=1,1=3")
    assert custom is not None and (custom(1), custom(2), custom(5)) == (3, 1, 0)


def test_chunk_text_packs_paragraphs_and_splits_long_ones() -> None:
    text = "alpha beta\n\n" + "word " * 80 + "\fnext sheet"
    chunks = chunk_text(text, 120)
    assert chunks[0].startswith("alpha beta") and chunks[-1] == "next sheet"
    assert all(len(c) <= 120 for c in chunks)
    assert " ".join(" ".join(chunks).split()) == " ".join(text.replace("\f", " ").split())


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(runner: CliRunner, command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.stdout


def test_every_command_is_documented_in_the_readme() -> None:
    """README.md names each command in a heading or a line starting `latestore <command>`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    registered = {
        c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands
    }
    assert registered == set(COMMANDS)
    for command in COMMANDS:
        heading = re.search(rf"^#+ .*\blatestore {command}\b", readme, re.MULTILINE)
        usage = re.search(rf"^\s*(\$ )?latestore {command}\b", readme, re.MULTILINE)
        assert heading or usage, f"README.md does not document `latestore {command}`"


def test_ingest_with_bfloat16_encoding(tmp_path: Path, runner: CliRunner) -> None:
    (tmp_path / "a.txt").write_text("Propellers convert engine torque into thrust.")
    (tmp_path / "b.txt").write_text("Sourdough bread rises slowly in a cold kitchen.")
    db = str(tmp_path / "s.db")
    summary = ingest(runner, str(tmp_path), "--store", db, "--encoder-dtype", "bfloat16")
    assert summary["pages_added"] == 2
    hits = json.loads(
        runner.invoke(app, ["search", "aircraft thrust", "--store", db, "-k", "1", "--json"]).stdout
    )
    assert hits[0]["metadata"]["file_name"] == "a.txt"
    bad = runner.invoke(app, ["ingest", str(tmp_path), "--store", db, "--encoder-dtype", "int3"])
    assert bad.exit_code != 0 and "int3" in bad.stderr


def test_page_estimates_follow_chunk_chars(tmp_path: Path) -> None:
    # A 10 MB text file ingested with --chunk-chars 20000000 is one page, not 6,666.
    big = tmp_path / "big.txt"
    big.write_text("word " * 2_000_000)
    assert estimate_pages(big, 20_000_000) == 1
    assert estimate_pages(big, 1500) == len(chunk_text("word " * 2_000_000, 1500)) == 6667


def test_sub_folders_are_named_when_not_entered(tmp_path: Path, runner: CliRunner) -> None:
    (tmp_path / "docs" / "deeper").mkdir(parents=True)
    (tmp_path / "docs" / ".hidden").mkdir()
    (tmp_path / "docs" / "top.txt").write_text("A page at the top.")
    (tmp_path / "docs" / "deeper" / "low.txt").write_text("A page one level down.")
    db = str(tmp_path / "s.db")
    result = runner.invoke(app, ["ingest", str(tmp_path / "docs"), "--store", db])
    assert result.exit_code == 0, result.output
    assert "1 sub-folders not entered: add --recursive" in " ".join(result.stdout.split())
    summary = ingest(runner, str(tmp_path / "docs"), "--store", db, "--recursive")
    assert summary["folders_not_entered"] == 0 and summary["pages_added"] == 1
