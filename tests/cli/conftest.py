"""Fixtures for CLI tests: the shared real PDFs, generated files, and bad files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
PDF_PAGES = 97  # ../shared/data/pdfs: 8 files, 97 pages (see its manifest.tsv)


def encrypted_pdf() -> bytes:
    """A one-page PDF behind the standard security handler with an unknown password.

    Its /U entry matches no password, so any reader must refuse it as encrypted.
    """
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
        b"<< /Filter /Standard /V 1 /R 2 /O <"
        + b"11" * 32
        + b"> /U <"
        + b"22" * 32
        + b"> /P -4 >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += (
        b"trailer\n<< /Size %d /Root 1 0 R /Encrypt 4 0 R /ID [<%s> <%s>] >>\n"
        b"startxref\n%d\n%%%%EOF\n" % (len(objects) + 1, b"ab" * 16, b"ab" * 16, xref)
    )
    return bytes(out)


@pytest.fixture(scope="session")
def pdf_files(shared_data: Path) -> list[Path]:
    files = sorted((shared_data / "pdfs").glob("*.pdf"))
    if len(files) != 8:
        pytest.skip("the 8 shared PDFs are not all present")
    return files


def write_text_files(folder: Path) -> int:
    """Text, markdown and JSONL files; returns how many pages they make (chunk_chars 1500)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text(
        "Late interaction keeps one vector per token.\n\nMaxSim sums per-token maxima.\n"
    )
    (folder / "guide.md").write_text("# Wing design\n\nSwept wings delay shock formation.\n")
    records = [
        {"id": "r1", "title": "Boundary layers", "text": "Laminar flow over flat plates."},
        {"id": "r2", "text": "Heat transfer at hypersonic speeds.", "year": 1962},
    ]
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return 1 + 1 + 2


def write_images(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "red.png", folder / "photo.jpg", folder / "scan.webp"]
    Image.new("RGB", (60, 40), "red").save(paths[0])
    Image.new("RGB", (50, 50), "blue").save(paths[1], format="JPEG")
    Image.new("RGB", (40, 60), "green").save(paths[2], format="WEBP")
    frames = [Image.new("RGB", (48, 48), c) for c in ("white", "black")]
    tiff = folder / "fax.tiff"
    frames[0].save(tiff, save_all=True, append_images=frames[1:])
    return [*paths, tiff]


def write_bad_files(folder: Path, good_pdf: Path) -> dict[str, str]:
    """Broken inputs; maps file name to a word its error reason must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    data = good_pdf.read_bytes()
    (folder / "truncated.pdf").write_bytes(data[: len(data) // 2])
    (folder / "encrypted.pdf").write_bytes(encrypted_pdf())
    (folder / "not-an-image.png").write_text("this is plain text, not a PNG\n")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "broken.jsonl").write_text('{"id": 1, "text": "ok"}\n{not json\n')
    return {
        "truncated.pdf": "truncated",
        "encrypted.pdf": "password",
        "not-an-image.png": "not a PNG",
        "empty.txt": "empty",
        "broken.jsonl": "line 2",
    }


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def cli_command() -> list[str]:
    script = ROOT / ".venv" / "bin" / "latestore"
    return [str(script)] if script.exists() else [sys.executable, "-m", "latestore.cli"]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.run(
        [*cli_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
