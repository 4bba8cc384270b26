"""Inputs the CLI cannot use: damaged stores, unreachable servers, FIFOs and devices."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from latestore import Page, PrecomputedVectors, Store
from latestore.cli import app
from latestore.errors import IndexSnapshotError, StoreUnavailableError
from latestore.ingest.sources import NOT_A_FILE, SourceError, open_source

COMMANDS = (["search", "x"], ["info"], ["reindex"], ["delete", "--id", "1"], ["ingest", "a.txt"])
UNREACHABLE = "postgresql+psycopg://nobody:secret@127.0.0.1:1/none"  # port 1: refused


def damaged_stores(folder: Path) -> list[Path]:
    """A text file, random bytes, and a real store cut in half or with a wiped header."""
    good = folder / "good.db"
    with Store.open(good, PrecomputedVectors(dim=4)) as store:
        vectors = np.eye(3, 4, dtype=np.float32)
        store.add_pages([Page(vectors=vectors, text="x" * 4000) for _ in range(100)])
    data = good.read_bytes()
    files = {
        "text.db": b"hello, this is not a database\n",
        "random.db": np.random.default_rng(0).bytes(8192),
        "truncated.db": data[: len(data) // 2],
        "wiped.db": data[:100] + b"\xff" * 3996 + data[4096:],
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return [folder / name for name in files]


def test_damaged_store_files_raise_a_typed_error_and_stay_untouched(tmp_path: Path) -> None:
    for path in damaged_stores(tmp_path):
        before = path.read_bytes()
        with pytest.raises(StoreUnavailableError, match="cannot use"):
            Store.open(path, PrecomputedVectors(dim=4))
        assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["good.db", "good.db.index", "text.db", "random.db", "truncated.db", "wiped.db"]
    )


def test_unreachable_server_raises_a_typed_error_without_the_password() -> None:
    with pytest.raises(StoreUnavailableError, match="cannot use") as caught:
        Store.open(UNREACHABLE, PrecomputedVectors(dim=4))
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_every_command_exits_2_on_an_unusable_store(
    tmp_path: Path, runner: CliRunner, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("a.txt").write_text("A page about turbines.")
    Path("text.db").write_text("not a database\n")
    for target in ("text.db", UNREACHABLE):
        result = runner.invoke(app, [*command, "--store", target])
        assert result.exit_code == 2, result.output
        assert "cannot use" in result.stderr and "Traceback" not in result.output
        assert "secret" not in result.stderr


def test_a_fifo_named_on_the_command_line_is_refused_not_waited_on(
    tmp_path: Path, runner: CliRunner
) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    (tmp_path / "real.txt").write_text("A page about wind tunnels.")

    def unblock() -> None:
        # Only if the ingest wrongly opened the FIFO: give it EOF so the test fails
        # on its assertions instead of hanging forever.
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    guard = threading.Timer(120, unblock)
    guard.start()
    args = ["ingest", str(fifo), str(tmp_path / "real.txt"), "--store", str(tmp_path / "s.db")]
    try:
        result = runner.invoke(app, [*args, "--json"])
    finally:
        guard.cancel()
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["failed"] == [{"path": str(fifo), "reason": NOT_A_FILE}]
    assert summary["pages_added"] == 1
    # A file that turns into a FIFO between discovery and reading is refused too.
    with pytest.raises(SourceError, match="not a regular file"):
        open_source(fifo, dpi=0, chunk_chars=1500)


def test_reindex_fails_when_its_snapshot_cannot_be_written(
    tmp_path: Path, runner: CliRunner
) -> None:
    db = tmp_path / "s.db"
    with Store.open(db, PrecomputedVectors(dim=4)) as store:
        store.add_pages([Page(vectors=np.eye(2, 4, dtype=np.float32))])
    # A file where the index folder should be: no snapshot can be written there, even
    # by root (whom a read-only folder would not stop).
    index_dir = tmp_path / "s.db.index"
    shutil.rmtree(index_dir)  # the snapshot and the vector folder
    index_dir.write_text("in the way\n")
    with Store.open(db, PrecomputedVectors(dim=4)) as store:
        with pytest.raises(IndexSnapshotError, match="cannot write index snapshot"):
            store.reindex()
        assert store.count() == 1 and len(store.search(np.eye(1, 4, dtype=np.float32))) == 1
    result = runner.invoke(app, ["reindex", "--store", str(db)])
    assert result.exit_code == 2, result.output
    assert "cannot write index snapshot" in result.stderr
    assert "rebuilt index" not in result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_errors_under_json_are_one_json_document(
    tmp_path: Path, runner: CliRunner, command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("a.txt").write_text("A page about turbines.")
    Path("text.db").write_text("not a database\n")
    result = runner.invoke(app, [*command, "--store", "text.db", "--json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["exit_code"] == 2 and "cannot use" in report["error"]


def test_info_is_readable_and_encoder_help_fits_the_command(
    tmp_path: Path, runner: CliRunner
) -> None:
    db = tmp_path / "s.db"
    with Store.open(db, PrecomputedVectors(dim=4)) as store:
        store.add_pages([Page(vectors=np.eye(2, 4, dtype=np.float32))])
    shown = runner.invoke(app, ["info", "--store", str(db)], terminal_width=200)
    assert shown.exit_code == 0 and "{'" not in shown.stdout and "kind=flat" in shown.stdout

    def help_text(command: str) -> str:  # rich wraps and boxes help: compare the words
        text = runner.invoke(app, [command, "--help"]).stdout
        return " ".join(text.replace("│", " ").split())

    for command in ("info", "delete", "reindex", "search"):
        assert "new store" not in help_text(command) and "recorded one" in help_text(command)
    assert "new store" in help_text("ingest")


def test_a_bad_search_filter_is_reported_before_the_model_is_needed(
    tmp_path: Path, runner: CliRunner
) -> None:
    # A store of precomputed vectors has no model to load for a text query: an error
    # about the encoder would mean the filter was checked only after the model load.
    db = tmp_path / "s.db"
    with Store.open(db, PrecomputedVectors(dim=4)) as store:
        store.add_pages([Page(vectors=np.eye(2, 4, dtype=np.float32), metadata={"a": 1})])
    for spec, says in (('{"year": 2020}', "unknown filter field"), ('{"a": {"$x": 1}}', "$x")):
        result = runner.invoke(app, ["search", "q", "--store", str(db), "--filter", spec])
        assert result.exit_code == 2
        assert says in result.stderr and "encoder" not in result.stderr
    result = runner.invoke(app, ["search", "q", "--store", str(db), "--filter", '{"a": 1}'])
    assert result.exit_code == 2 and "encoder" in result.stderr  # then the model is needed
