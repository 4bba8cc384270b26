"""The installed console script: a SIGKILL mid-ingest, then the same command again."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine
from sqlalchemy import text as sql

from latestore import Page, Store
from latestore.index.devices import gpu_nodes_present
from latestore.store.sql import to_url
from tests.cli.conftest import cli_command, run_cli
from tests.helpers import precomputed_store, unit_vectors


def count_pages(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM ls_pages").fetchone()[0])
    except sqlite3.OperationalError:  # the schema is not created yet
        return 0


def test_sigkill_then_rerun_ends_with_every_page_once(
    tmp_path: Path, pdf_files: list[Path]
) -> None:
    # Every PDF but the 61-page report keeps the test short: 36 pages, 9 transactions.
    files = [p for p in pdf_files if not p.name.startswith("nist")]
    expected_pages = sum(page_count(p) for p in files)
    db = tmp_path / "store.db"
    args = ["ingest", *map(str, files), "--store", str(db), "--dpi", "40", "--batch-size", "4"]
    log = (tmp_path / "killed.log").open("w")
    proc = subprocess.Popen([*cli_command(), *args], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while count_pages(db) < 8 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        log.flush()
        report = (tmp_path / "killed.log").read_text()
        assert proc.poll() is None, f"ingest ended before it could be killed:\n{report}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    at_kill = count_pages(db)
    assert 8 <= at_kill < expected_pages, (tmp_path / "killed.log").read_text()

    rerun = run_cli(*args, "--json")
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["pages_added"] == expected_pages - at_kill
    assert summary["pages_unchanged"] == at_kill
    assert "ingest: " in rerun.stderr  # plain progress lines when not on a terminal

    with sqlite3.connect(db) as conn:
        found = conn.execute(
            "SELECT external_id, document_id, page_number FROM ls_pages"
        ).fetchall()
    assert len(found) == expected_pages
    expected = {
        f"{p.resolve().as_posix()}#page={n}" for p in files for n in range(1, page_count(p) + 1)
    }
    assert {row[0] for row in found} == expected
    assert len({(row[1], row[2]) for row in found}) == expected_pages


@pytest.mark.slow
def test_two_ingests_of_one_folder_at_once_both_succeed(tmp_path: Path, store_url: str) -> None:
    # Issue 13: the second of two concurrent runs into an existing store died with an
    # IntegrityError traceback. Small batches make their transactions interleave.
    # Issue 26: the same against PostgreSQL.
    folder = tmp_path / "docs"
    folder.mkdir()
    texts = [f"Paragraph {i} on {topic}." for i, topic in enumerate("abcdefghijklmnop")]
    for i, text in enumerate(texts):
        (folder / f"doc{i:02d}.txt").write_text(text)
    first = run_cli("ingest", str(folder / "doc00.txt"), "--store", store_url)
    assert first.returncode == 0, first.stderr
    args = ["ingest", str(folder), "--store", store_url, "--batch-size", "2", "--json"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    runs = [
        subprocess.Popen(
            [*cli_command(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    reports = []
    for run, (stdout, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr.decode()
        reports.append(json.loads(stdout))
        assert reports[-1]["failed"] == []
    # Each new page is counted as added by exactly one run; the other found it stored
    # identically (before planning, or under the write lock) and counts it unchanged.
    assert sum(r["pages_added"] for r in reports) == len(texts) - 1
    for report in reports:
        assert report["pages_updated"] == 0
        assert report["pages_added"] + report["pages_unchanged"] == len(texts)
    engine = create_engine(to_url(store_url))
    try:
        with engine.connect() as conn:
            found = dict(conn.execute(sql("SELECT external_id, id FROM ls_pages")).all())
    finally:
        engine.dispose()
    expected = {f"{(folder / f'doc{i:02d}.txt').as_posix()}#page=1" for i in range(len(texts))}
    assert found.keys() == expected
    assert found[f"{(folder / 'doc00.txt').as_posix()}#page=1"] == 1  # kept its id
    with Store.open(store_url) as store:  # the recorded encoder, loaded only if needed
        assert store.count() == len(texts) and store._sync.index.consistent()


def page_count(path: Path) -> int:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(path)
    try:
        return len(document)
    finally:
        document.close()


def test_console_script_help() -> None:
    result = run_cli("--help", timeout=120)
    assert result.returncode == 0
    for command in ("ingest", "search", "info", "delete", "reindex", "evaluate"):
        assert command in result.stdout


@pytest.mark.slow
def test_model_loading_bars_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 13: "Loading weights ... 103/103" was drawn on every encoding command.
    text = tmp_path / "a.txt"
    text.write_text("ColBERT ranks pages by MaxSim over token vectors.")
    db = str(tmp_path / "store.db")
    # Importing latestore.cli in this process (other tests do) set TQDM_DISABLE here;
    # the child must decide for itself.
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.delenv("LATESTORE_VERBOSE", raising=False)
    assert run_cli("ingest", str(text), "--store", db).returncode == 0
    quiet = run_cli("search", "maxsim", "--store", db)
    assert quiet.returncode == 0 and "Loading weights" not in quiet.stderr
    # LATESTORE_VERBOSE=1 lets transformers draw its bar again; the default MiniLM no
    # longer loads through transformers (encoders/text/bert_lite.py), so it has none to draw.


def test_usage_errors_under_json_are_one_json_document(tmp_path: Path) -> None:
    for args in (
        ["search", "q", "--store", str(tmp_path / "s.db"), "--k", "many", "--json"],
        ["info", "--json", "--no-such-option"],
    ):
        done = run_cli(*args)
        assert done.returncode == 2, done
        report = json.loads(done.stdout)
        assert report["exit_code"] == 2 and report["error"], report
        assert "Error" in done.stderr or "error" in done.stderr


_REPORT_HEAVY_IMPORTS = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('HEAVY=' + ','.join(m for m in ('torch', 'transformers')"
    " if m in sys.modules), file=sys.stderr))\n"
    "from latestore.cli.main import main\n"
    "sys.argv = ['latestore', *sys.argv[1:]]\n"
    "main()\n"
)


@pytest.mark.skipif(gpu_nodes_present(), reason="on a GPU machine the index asks torch for CUDA")
@pytest.mark.parametrize(
    "command",
    [["info"], ["info", "--json"], ["reindex"], ["delete", "--external-id", "p1"]],
)
def test_commands_without_a_model_never_import_torch(tmp_path: Path, command: list[str]) -> None:
    # Issue 13: info, delete and reindex took seconds importing torch through the index.
    rng = np.random.default_rng(0)
    db = tmp_path / "store.db"
    with precomputed_store(db, dim=16) as store:
        store.add_pages(
            [Page(external_id=f"p{i}", vectors=unit_vectors(rng, 5, 16)) for i in range(3)]
        )
    done = subprocess.run(
        [sys.executable, "-c", _REPORT_HEAVY_IMPORTS, *command, "--store", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "HEAVY=\n" in done.stderr, done.stderr


def test_a_logged_warning_carries_one_latestore_prefix(tmp_path: Path) -> None:
    # Issue 13 saw "latestore: latestore: ..." on stderr. A damaged snapshot makes the
    # index log a warning while `info` opens the store; it must read naturally.
    rng = np.random.default_rng(1)
    db = tmp_path / "store.db"
    with precomputed_store(db, dim=16) as store:
        store.add_pages([Page(vectors=unit_vectors(rng, 5, 16)) for _ in range(3)])
        store.reindex()
    snapshots = list((tmp_path / "store.db.index").glob("*.snapshot"))
    assert snapshots
    for snapshot in snapshots:
        snapshot.write_bytes(b"not a snapshot" * 10)
    result = run_cli("info", "--store", str(db), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "index snapshot" in result.stderr
    assert "latestore: latestore:" not in result.stderr
    assert result.stderr.count("latestore:") == result.stderr.count("index snapshot")
