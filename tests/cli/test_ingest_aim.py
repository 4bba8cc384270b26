"""Ingest you can aim (--include/--exclude, --dry-run, project files named), the listing
command, --version, and help without a type on flags."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from latestore import __version__
from latestore.cli import app
from latestore.ingest.selection import project_file_reason, selected


def data_folder(root: Path) -> Path:
    """A BEIR-style folder as people download them: a corpus with its project files."""
    folder = root / "data"
    (folder / "drafts").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        json.dumps({"id": "d1", "title": "Rotors", "text": "Rotor blades stall."})
        + "\n"
        + json.dumps({"id": "d2", "title": "Shields", "text": "Heat shields in reentry."})
        + "\n"
    )
    (folder / "queries.jsonl").write_text(json.dumps({"id": "q1", "text": "rotor stall"}) + "\n")
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    (folder / "README.md").write_text("# The data\n\nWhere it came from.")
    (folder / "LICENSE").write_text("Public domain.")  # no suffix: not a supported type
    (folder / "notes.txt").write_text("Propellers turn torque into thrust.")
    (folder / "drafts" / "old.txt").write_text("An old draft about gliders.")
    return folder


def test_selection_rules() -> None:
    assert selected(Path("a/b.md"), Path("b.md"), include=("*.md",), exclude=())
    assert not selected(Path("a/b.txt"), Path("b.txt"), include=("*.md",), exclude=())
    assert not selected(
        Path("x/drafts/c.txt"), Path("drafts/c.txt"), include=(), exclude=("drafts/*",)
    )
    assert project_file_reason(Path("/d/README.md"), "text") == "a README"
    assert project_file_reason(Path("/d/notes.txt"), "text") is None
    assert project_file_reason(Path("/d/README.pdf"), "pdf") is None


def test_dry_run_lists_files_and_kinds_without_a_store(tmp_path: Path, runner: CliRunner) -> None:
    folder = data_folder(tmp_path)
    db = tmp_path / "s.db"
    result = runner.invoke(
        app, ["ingest", str(folder), "--store", str(db), "-r", "--dry-run", "--json"]
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    kinds = {Path(f["path"]).name: (f["kind"], f["pages"], f["note"]) for f in plan["files"]}
    assert kinds == {
        "README.md": ("text", 1, "a README"),
        "corpus.jsonl": ("jsonl", 2, None),
        "queries.jsonl": ("jsonl", 1, "a queries file"),
        "notes.txt": ("text", 1, None),
        "old.txt": ("text", 1, None),
    }
    assert plan["files_ignored"] == 2 and plan["pages"] == 6  # LICENSE, qrels.tsv
    assert not db.exists()  # nothing opened, nothing written
    globs = ["--exclude", "drafts/*", "--exclude", "README*", "--include", "*.jsonl"]
    aim = ["ingest", str(folder), "-s", str(db), "-r", "--dry-run", *globs, "--include", "*.txt"]
    aimed = json.loads(runner.invoke(app, [*aim, "--json"]).stdout)
    chosen = sorted(Path(f["path"]).name for f in aimed["files"])
    assert chosen == ["corpus.jsonl", "notes.txt", "queries.jsonl"]
    assert aimed["files_excluded"] == 2  # README.md, drafts/old.txt
    table = " ".join(runner.invoke(app, aim).stdout.split())
    assert "would read 3 files, about 4 pages" in table and "2 excluded" in table
    assert "--exclude queries.jsonl" in table  # how to leave out the noted file


def test_summary_names_project_files_and_list_shows_them(tmp_path: Path, runner: CliRunner) -> None:
    folder = data_folder(tmp_path)
    db = str(tmp_path / "s.db")
    result = runner.invoke(app, ["ingest", str(folder), "--store", db, "--exclude", "notes*"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "2 files read as pages look like a project's own files" in text
    assert "README.md (a README)" in text and "queries.jsonl (a queries file)" in text
    assert "--exclude README.md --exclude queries.jsonl" in text
    assert "1 excluded" in text

    listed = runner.invoke(app, ["list", "--store", db, "--json"])
    documents = json.loads(listed.stdout)
    names = {Path(d["document"]).name: d["pages"] for d in documents["documents"]}
    assert names == {"README.md": 1, "corpus.jsonl": 2, "queries.jsonl": 1}
    assert documents["total"] == 3
    pages = runner.invoke(
        app, ["list", "-s", db, "--pages", "--document", str(folder / "corpus.jsonl"), "--json"]
    )
    rows = json.loads(pages.stdout)["pages"]
    assert [r["page"] for r in rows] == [1, 2] and rows[0]["text"].startswith("Rotors")
    filtered = runner.invoke(
        app, ["list", "-s", db, "--pages", "--filter", '{"file_type": "text"}', "--limit", "1"]
    )
    assert filtered.exit_code == 0 and "README.md" in filtered.stdout
    assert "1 of 1 pages" not in filtered.stdout and "1 pages" in filtered.stdout
    bad = runner.invoke(app, ["list", "-s", db, "--filter", '{"colour": 1}', "--json"])
    assert bad.exit_code == 2 and "colour" in json.loads(bad.stdout)["error"]


def test_version_and_help_without_flag_types(runner: CliRunner) -> None:
    shown = runner.invoke(app, ["--version"])
    assert shown.exit_code == 0 and shown.stdout.strip() == f"latestore {__version__}"
    for command in ("ingest", "search", "delete", "list", "evaluate"):
        helped = runner.invoke(app, [command, "--help"], env={"COLUMNS": "160"})
        assert helped.exit_code == 0
        assert "<bool>" not in helped.stdout
        assert re.search(r"--store\s+-s\s+<str>", helped.stdout)  # value types stay


def test_progress_of_a_page_job_counts_from_its_start_and_names_no_files() -> None:
    """A re-encode learns its total after its first batch: the rate must still count the
    time that batch took, and a job over pages shows no "0/1 files"."""
    import io
    import time

    from rich.console import Console

    from latestore.cli.progress import ConsoleProgress

    sink = io.StringIO()
    with ConsoleProgress(Console(file=sink, width=200), label="re-encode") as progress:
        progress.start(0, 1_000, started=time.perf_counter() - 100.0)
        progress.advance(1_000)
    line = sink.getvalue().strip().splitlines()[-1]
    assert line.startswith("re-encode: 1,000/1,000 pages, ")
    rate = float(line.split(", ")[1].split()[0])
    assert 9.0 < rate <= 10.0  # 1,000 pages in a little over 100 s, not thousands per second
    assert "files" not in line
