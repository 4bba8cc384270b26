"""Image pages reach a vision encoder: a tiny random-weight ColPali in its real layout."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from latestore.cli import app
from tests.cli.conftest import write_images, write_text_files
from tests.encoders.vision_checkpoints import build_colpali


def test_images_and_pdf_pages_with_a_vision_encoder(tmp_path: Path, pdf_files: list[Path]) -> None:
    model = build_colpali(tmp_path / "colpali")
    images = write_images(tmp_path / "images")
    write_text_files(tmp_path / "texts")
    nara = next(p for p in pdf_files if p.name.startswith("nara"))
    db = tmp_path / "s.db"
    args = [
        "ingest",
        str(tmp_path / "images"),
        str(tmp_path / "texts"),
        str(nara),
        "--store",
        str(db),
        "--encoder",
        str(model),
        "--dpi",
        "30",
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["pages_added"] == len(images) + 1 + 2  # the TIFF has two frames
    # Text-only pages cannot be encoded by an image model: skipped, with the reason.
    assert len(summary["skipped"]) == 4
    assert all("cannot encode text alone" in s["reason"] for s in summary["skipped"])
    # ... and without suggesting that a text or JSONL file might hold an image.
    assert all(" files have no images" in s["reason"] for s in summary["skipped"])
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT count(*) FROM ls_pages WHERE image IS NOT NULL").fetchone()
    assert stored[0] == summary["pages_added"]
    # The store remembers its encoder: a re-run without --encoder finds everything stored.
    again = CliRunner().invoke(app, [*args[: args.index("--encoder")], "--dpi", "30", "--json"])
    assert json.loads(again.stdout)["pages_unchanged"] == summary["pages_added"]
