"""Hostile files in an ingest run: each is listed as failed with its reason, and every
other file of the run is still ingested (issue 26 item 1).

A JSONL line nested 50,000 deep made json's decoder raise RecursionError, which ended
the whole run with a traceback and stored none of the other files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from latestore import Store
from latestore.cli import app
from latestore.ingest import Ingestor
from latestore.ingest.sources import SourceError, open_source

DEPTH = 50_000


def nested_line(depth: int) -> str:
    return '{"text": "deep record", "v": ' + "[" * depth + "]" * depth + "}\n"


def write_run(folder: Path) -> dict[str, str]:
    """Two good files and the hostile ones; maps each hostile file to its reason."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "good.txt").write_text("Centrifugal pumps move water by rotation.\n")
    good = [{"id": "a", "text": "Valves stop the flow."}, {"id": "b", "text": "Gaskets seal."}]
    (folder / "good.jsonl").write_text("".join(json.dumps(r) + "\n" for r in good))
    (folder / "deep.jsonl").write_text(nested_line(DEPTH))
    (folder / "nul-metadata.jsonl").write_text(
        json.dumps({"text": "x", "metadata": {"m": "a\x00b"}}) + "\n"
    )
    return {
        "deep.jsonl": "nests too deeply",
        "nul-metadata.jsonl": "NUL",
    }


def test_a_line_nested_50000_deep_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text('{"text": "fine"}\n' + nested_line(DEPTH))
    with pytest.raises(SourceError, match="line 2: JSON nests too deeply"):
        open_source(path, dpi=72, chunk_chars=1500)


def check_report(report: dict[str, Any], folder: Path, reasons: dict[str, str]) -> None:
    failed = {Path(f["path"]).name: f["reason"] for f in report["failed"]}
    assert sorted(failed) == sorted(reasons), report
    for name, word in reasons.items():
        assert word in failed[name], failed
    assert report["pages_added"] == 3, report  # good.txt: 1 page, good.jsonl: 2


def test_ingest_lists_hostile_files_and_stores_the_rest(
    store_url: str, tmp_path: Path, minilm: Any
) -> None:
    folder = tmp_path / "run"
    reasons = write_run(folder)
    with Store.open(store_url, minilm) as store:
        report = Ingestor(store).run([folder])
        check_report(report.to_dict(), folder, reasons)
        assert store.count() == 3
        assert {p.text for p in store.pages()} >= {"Valves stop the flow.", "Gaskets seal."}


def test_cli_ingest_lists_hostile_files_and_stores_the_rest(tmp_path: Path, minilm: Any) -> None:
    """The CLI run in-process: its exit code says a file failed, its JSON names it."""
    folder = tmp_path / "run"
    reasons = write_run(folder)
    db = tmp_path / "cli.db"
    with Store.open(db, minilm):
        pass  # the store records the test encoder; the CLI reopens it with it
    result = CliRunner().invoke(app, ["ingest", str(folder), "--store", str(db), "--json"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    check_report(json.loads(result.stdout), folder, reasons)
