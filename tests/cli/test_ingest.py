"""In-process CLI runs over the shared PDFs plus generated text, images and broken files."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from latestore.cli import app
from tests.cli.conftest import PDF_PAGES, write_bad_files, write_images, write_text_files

# One worker runs this module and builds its corpus once: spread over workers, each
# built its own (about 110 s apiece under CI load). The fixture is session-scoped
# because xdist may interleave other modules' tests on that worker, and a module-scoped
# fixture is torn down (and later rebuilt) whenever the next test is another module's.
pytestmark = pytest.mark.xdist_group("cli_ingest_corpus")


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory, pdf_files: list[Path]) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("ingest")
    text_pages = write_text_files(base / "texts")
    images = write_images(base / "images")
    bad = write_bad_files(base / "bad", pdf_files[0])
    db = base / "store.db"
    args = [
        "ingest",
        *map(str, pdf_files),
        str(base / "texts"),
        str(base / "images"),
        str(base / "bad"),
        "--store",
        str(db),
        "--dpi",
        "50",
        "--batch-size",
        "16",
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    return {
        "db": db,
        "args": args,
        "result": result,
        "text_pages": text_pages,
        "image_pages": len(images) + 1,
        "bad": bad,
        "pdfs": pdf_files,
    }


def test_first_run_ingests_everything_readable(corpus: dict[str, Any]) -> None:
    result = corpus["result"]
    assert result.exit_code == 1, result.output  # broken files fail the run...
    summary = json.loads(result.stdout)
    expected = PDF_PAGES + corpus["text_pages"]
    assert summary["pages_added"] == expected  # ...but everything else is in
    assert summary["files_ingested"] == 8 + 3
    db = corpus["db"]
    assert rows(db, "SELECT count(*) FROM ls_pages")[0][0] == expected
    pairs = rows(db, "SELECT document_id, page_number FROM ls_pages")
    assert len(set(pairs)) == len(pairs)


def test_broken_files_are_reported_with_reasons(corpus: dict[str, Any]) -> None:
    summary = json.loads(corpus["result"].stdout)
    reasons = {Path(f["path"]).name: f["reason"] for f in summary["failed"]}
    assert set(reasons) == set(corpus["bad"])
    for name, word in corpus["bad"].items():
        assert word in reasons[name], (name, reasons[name])


def test_text_only_encoder_skips_image_pages_with_a_reason(corpus: dict[str, Any]) -> None:
    summary = json.loads(corpus["result"].stdout)
    skipped = summary["skipped"]
    assert len(skipped) == corpus["image_pages"]  # 3 images + a 2-frame TIFF
    assert all("cannot encode images" in s["reason"] for s in skipped)
    assert summary["files_skipped"] == 4


def test_pdf_pages_carry_text_image_and_provenance(corpus: dict[str, Any]) -> None:
    manifest_path = corpus["pdfs"][0].parent / "manifest.tsv"
    with manifest_path.open() as handle:
        manifest = {row["file"]: row for row in csv.DictReader(handle, delimiter="\t")}
    found = rows(
        corpus["db"],
        "SELECT external_id, page_number, text, image, metadata "
        "FROM ls_pages WHERE json_extract(metadata, '$.file_type') = 'pdf'",
    )
    assert len(found) == PDF_PAGES
    per_file: dict[str, int] = {}
    for external_id, page_number, text, image, meta_json in found:
        meta = json.loads(meta_json)
        name = meta["file_name"]
        per_file[name] = per_file.get(name, 0) + 1
        assert external_id == f"{meta['source_path']}#page={page_number}"
        assert meta["file_sha256"] == manifest[name]["sha256"]
        assert meta["page_count"] == int(manifest[name]["pages"])
        assert meta["dpi"] == 50 and len(meta["page_sha256"]) == 64
        assert text and image[:8] == b"\x89PNG\r\n\x1a\n"
    assert per_file == {name: int(row["pages"]) for name, row in manifest.items()}


def test_second_run_adds_nothing(corpus: dict[str, Any]) -> None:
    result = CliRunner().invoke(app, corpus["args"])
    summary = json.loads(result.stdout)
    assert summary["pages_added"] == summary["pages_updated"] == summary["pages_deleted"] == 0
    assert summary["pages_unchanged"] == PDF_PAGES + corpus["text_pages"]
    assert summary["files_unchanged"] == 8 + 3
    assert result.exit_code == 1  # the broken files are still broken


def test_search_info_and_reindex_commands(corpus: dict[str, Any]) -> None:
    runner, db = CliRunner(), str(corpus["db"])
    found = runner.invoke(
        app,
        [
            "search",
            "Bill of Rights amendments",
            "--store",
            db,
            "-k",
            "3",
            "--filter",
            '{"file_type": "pdf"}',
            "--json",
        ],
    )
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout)
    assert len(hits) == 3 and all(h["metadata"]["file_type"] == "pdf" for h in hits)
    assert hits[0]["metadata"]["file_name"] == "nara-bill-of-rights-handout.pdf"
    table = runner.invoke(app, ["search", "swept wings", "--store", db, "-k", "2"])
    assert table.exit_code == 0 and "guide.md" in table.stdout

    info = runner.invoke(app, ["info", "--store", db, "--json"])
    assert info.exit_code == 0, info.output
    details = json.loads(info.stdout)
    assert details["pages"] == PDF_PAGES + corpus["text_pages"]
    assert details["documents"] == 8 + 3
    assert details["encoder"] == "minilm" and details["index"]["kind"]
    assert details["tokens"] > 0 and details["vector_bytes"] == details["tokens"] * 384 * 2
    assert details["sql_bytes"] > details["vector_bytes"] and details["index_bytes"] > 0

    rebuilt = runner.invoke(app, ["reindex", "--store", db, "--json"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert json.loads(rebuilt.stdout)["tokens"] == details["tokens"]


def test_summary_lists_what_each_file_was_read_as(corpus: dict[str, Any]) -> None:
    # Issue 13: a README or a queries file in a data folder became pages silently.
    taken = json.loads(corpus["result"].stdout)["files_taken_as"]
    names = {kind: sorted(Path(p).name for p in paths) for kind, paths in taken.items()}
    assert names["pdf"] == sorted(p.name for p in corpus["pdfs"])
    assert names["text"] == ["guide.md", "notes.txt"]
    assert names["jsonl"] == ["records.jsonl"]
    assert {"red.png", "photo.jpg", "scan.webp", "fax.tiff"} <= set(names["image"])
    assert not {"truncated.pdf", "encrypted.pdf"} & set(names["pdf"])  # never opened


def test_console_summary_names_the_files_read_as_text(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    write_text_files(folder)
    (folder / "README.md").write_text("# About this data\n\nQueries and a corpus.\n")
    result = CliRunner().invoke(app, ["ingest", str(folder), "--store", str(tmp_path / "s.db")])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith("read as:"))
    assert "text: 3 files (README.md, guide.md, notes.txt)" in line
    assert "jsonl: 1 file (records.jsonl)" in line
