"""Windows by default for new stores, a store's own settings kept; what truncation cut,
in ingest's summary (with the command that avoids it) and `info`; `reindex --re-encode`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from latestore.cli import app
from latestore.encoders.windows import plan_windows

LONG = " ".join(f"Sentence {i} is about turbine blades and nozzle flow." for i in range(80))


def run_json(runner: CliRunner, *args: str) -> dict[str, object]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.stdout)
    return out


def test_truncation_is_reported_and_re_encoding_switches_to_windows(
    tmp_path: Path, runner: CliRunner
) -> None:
    doc, db = tmp_path / "notes.txt", str(tmp_path / "s.db")
    doc.write_text(f"A short first paragraph.\n\n{LONG}")
    chunk = str(len(LONG) + 5)  # one page per paragraph
    summary = run_json(
        runner, "ingest", str(doc), "--store", db, "--chunk-chars", chunk, "--no-windows"
    )
    assert summary["pages_added"] == 2 and summary["pages_truncated"] == 1
    assert summary["page_windows"] == {"windows": False}
    dropped = summary["tokens_dropped"]
    assert isinstance(dropped, int) and dropped > 500
    # Without the flag, the store keeps the settings it was created with (a store from
    # before windows were the default reads the same way), and the summary says how
    # to read its pages whole.
    other = str(len(LONG) + 10)
    text = runner.invoke(app, ["ingest", str(doc), "--store", db, "--chunk-chars", other])
    assert "1 pages truncated" in text.stdout  # changed pages are re-encoded and reported
    assert f"latestore reindex --store {db} --re-encode" in " ".join(text.stdout.split())
    # Asking an existing store for other settings is refused before anything is written.
    clash = runner.invoke(app, ["ingest", str(doc), "--store", db, "--windows"])
    assert clash.exit_code == 2 and "--re-encode --windows" in " ".join(clash.stderr.split())

    info = run_json(runner, "info", "--store", db)
    assert info["page_windows"] == {"windows": False}
    assert (info["pages_truncated"], info["tokens_dropped"]) == (1, dropped)
    assert info["pages_uncounted"] == 0

    bad = runner.invoke(app, ["reindex", "--store", db, "--re-encode", "--window-stride", "999"])
    assert bad.exit_code == 2 and "window_stride" in bad.output
    assert run_json(runner, "info", "--store", db)["page_windows"] == {"windows": False}

    done = run_json(runner, "reindex", "--store", db, "--re-encode")
    report = done["re_encode"]
    assert isinstance(report, dict)
    assert report["pages_reencoded"] == 2 and report["windowing"]["windows"] is True
    windows = plan_windows(254 + dropped, 254, 191)  # MiniLM: 254 text tokens per window
    extra_specials = 2 * (len(windows) - 1)
    assert report["tokens_after"] == report["tokens_before"] + dropped + extra_specials
    info = run_json(runner, "info", "--store", db)
    assert info["page_windows"]["windows"] is True  # type: ignore[index]
    assert (info["pages_truncated"], info["tokens_dropped"]) == (0, 0)
    assert info["tokens"] == report["tokens_after"]
    hits = runner.invoke(app, ["search", "Sentence 79 nozzle", "--store", db, "--json"])
    assert json.loads(hits.stdout)[0]["text"].startswith("Sentence 0")

    back = run_json(runner, "reindex", "--store", db, "--re-encode", "--no-windows")
    assert back["re_encode"]["windowing"] == {"windows": False}  # type: ignore[index]
    assert run_json(runner, "info", "--store", db)["pages_truncated"] == 1


def test_a_new_store_reads_long_pages_whole_and_says_how_to_read_more(
    tmp_path: Path, runner: CliRunner
) -> None:
    doc = tmp_path / "long.txt"
    doc.write_text(LONG)
    whole = str(tmp_path / "whole.db")
    summary = run_json(runner, "ingest", str(doc), "--store", whole, "--chunk-chars", "9000")
    assert summary["page_windows"]["windows"] is True  # type: ignore[index]
    assert (summary["pages_truncated"], summary["tokens_dropped"]) == (0, 0)
    # Windows on and still cut (past --max-page-tokens): the summary names the flag.
    capped = str(tmp_path / "capped.db")
    args = ["ingest", str(doc), "--store", capped, "--chunk-chars", "9000"]
    text = runner.invoke(app, [*args, "--max-page-tokens", "300", "--window-stride", "200"])
    assert text.exit_code == 0, text.output
    flat = " ".join(text.stdout.split())
    assert "1 pages truncated" in flat and "--max-page-tokens 600" in flat
    info = run_json(runner, "info", "--store", capped)
    assert info["page_windows"] == {"windows": True, "window_stride": 200, "max_page_tokens": 300}
    refused = runner.invoke(app, [*args, "--no-windows", "--window-stride", "10"])
    assert refused.exit_code == 2 and "need windows" in refused.stderr
