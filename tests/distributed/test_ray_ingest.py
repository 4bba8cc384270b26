"""Distributed ingestion against local ingestion, on real PDFs and the real MiniLM model.

The shared PDFs but the two longest (6 files, 21 pages, one to ten pages each; the 61-page
report and the 15-page register made the run minutes slower, not the check stronger)
are ingested once locally (``ingest_paths``) and once on a local Ray cluster into another
PostgreSQL database; rows and vectors must match. PDF pages
are rendered at 72 dpi (the stored image path runs; the text model ignores pixels).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, select

from latestore.ingest import IngestOptions, ingest_paths
from latestore.store.schema import PageRow, PageVectorsRow
from tests.conftest import PG_HOW, PG_URL_ENV
from tests.postgres import fresh_database

pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray_ingest")

from latestore.distributed import ray_ingest_paths  # noqa: E402

OPTIONS = IngestOptions(dpi=72, batch_size=8)
LONG_PDF_PREFIXES = ("nist-sp-1900", "federal-register")
SMALL_PDFS = (
    "nara-bill-of-rights-handout.pdf",
    "fbi-nics-background-checks-2015-11.pdf",
    "us-senate-expenditures.pdf",
    "siege-of-vicksburg-sample-ocr.pdf",
)


@pytest.fixture(scope="module")
def pg_admin() -> str:
    admin = os.environ.get(PG_URL_ENV)
    if not admin:
        pytest.skip(f"Ray tests need PostgreSQL: {PG_HOW}")
    return admin


@pytest.fixture
def empty_db(pg_admin: str) -> Iterator[str]:
    with fresh_database(pg_admin) as url:
        yield url


def stored(url: str) -> dict[str, tuple[Any, ...]]:
    """external id -> everything ingestion wrote for that page, vectors included."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    PageRow.external_id,
                    PageRow.document_id,
                    PageRow.page_number,
                    PageRow.text,
                    PageRow.source,
                    PageRow.meta,
                    PageRow.image,
                    PageRow.content_hash,
                    PageRow.n_tokens,
                    PageRow.text_tokens,
                    PageRow.tokens_dropped,
                    PageRow.encoded_with,
                    PageVectorsRow.data,
                ).join(PageVectorsRow, PageVectorsRow.page_id == PageRow.id)
            )
            return {row[0]: tuple(row[1:]) for row in rows}
    finally:
        engine.dispose()


def assert_same_pages(got: dict[str, tuple[Any, ...]], want: dict[str, tuple[Any, ...]]) -> int:
    """Rows equal field for field; vectors equal up to float16 rounding. Returns how
    many pages have bit-identical vectors.

    The model runs on batches of pages padded to their longest member; which pages
    share a batch differs between the runs, and padding changes float32 rounding, so
    an element may land one float16 step away (seen: 1 page of 97).
    """
    assert got.keys() == want.keys()
    identical = 0
    for external_id, row in want.items():
        other = got[external_id]
        assert other[:-1] == row[:-1], external_id  # everything but the vector blob
        a = np.frombuffer(other[-1], dtype=np.float16).astype(np.float32)
        b = np.frombuffer(row[-1], dtype=np.float16).astype(np.float32)
        assert a.shape == b.shape, external_id
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-3, err_msg=external_id)
        identical += int(other[-1] == row[-1])
    return identical


def local_copy(pg_admin: str, paths: list[Path]) -> Iterator[dict[str, tuple[Any, ...]]]:
    with fresh_database(pg_admin) as url:
        report = ingest_paths(url, paths, OPTIONS)
        assert report.exit_code == 0
        yield stored(url)


@pytest.fixture(scope="module")
def pdf_dir(shared_data: Path) -> Path:
    return shared_data / "pdfs"


@pytest.fixture(scope="module")
def pdfs(pdf_dir: Path) -> list[Path]:
    # The folder's README and manifest are not pages.
    return sorted(p for p in pdf_dir.glob("*.pdf") if not p.name.startswith(LONG_PDF_PREFIXES))


@pytest.fixture(scope="module")
def corpus(pdfs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The PDFs and a README beside them, which both ingestions must name as a project's
    own file in their summaries."""
    readme = tmp_path_factory.mktemp("readme") / "README.md"
    readme.write_text("# Corpus notes\nThese PDFs come from public agencies.\n")
    return [*pdfs, readme]


@pytest.fixture(scope="module")
def local_all(pg_admin: str, corpus: list[Path]) -> Iterator[dict[str, tuple[Any, ...]]]:
    yield from local_copy(pg_admin, corpus)


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory: pytest.TempPathFactory, pdf_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("small_pdfs")
    for name in SMALL_PDFS:
        shutil.copy(pdf_dir / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def local_small(pg_admin: str, small_dir: Path) -> Iterator[dict[str, tuple[Any, ...]]]:
    yield from local_copy(pg_admin, [small_dir])


class Bar:
    """An IngestProgress that counts, and runs each ``(pages, action)`` once that many
    pages are done."""

    def __init__(self, actions: list[tuple[int, Any]] | None = None) -> None:
        self.total = self.done = self.files = 0
        self.statuses: dict[str, str] = {}
        self.actions = list(actions or [])

    def start(self, files: int, pages: int) -> None:
        self.files, self.total = files, pages

    def advance(self, pages: int) -> None:
        self.done += pages
        while self.actions and self.done >= self.actions[0][0]:
            _, action = self.actions.pop(0)
            action()

    def file_done(self, path: Path, status: str) -> None:
        self.statuses[path.name] = status


def test_ray_ingest_equals_local_ingest(
    ray_session: Any,
    empty_db: str,
    pdfs: list[Path],
    corpus: list[Path],
    local_all: dict[str, tuple[Any, ...]],
) -> None:
    bar = Bar()
    # Two encode actors of half a CPU each leave the local cluster's other CPU to render.
    report = ray_ingest_paths(
        empty_db, corpus, OPTIONS, progress=bar, encoders=2, cpus_per_encoder=0.5
    )
    assert report.exit_code == 0
    assert report.pages_added == len(local_all) == 22
    taken = sorted(Path(p).resolve() for p in report.files_taken_as["pdf"])
    assert taken == sorted(p.resolve() for p in pdfs)
    assert [Path(p).name for p in report.project_files] == ["README.md"]
    assert bar.done == 22 and bar.files == 7
    assert set(bar.statuses.values()) == {"ingested"}
    # Pages, texts, images, metadata, counts, encoder fingerprint; vectors to rounding.
    identical = assert_same_pages(stored(empty_db), local_all)
    assert identical >= 20
    # Both ingestions agree on what is current: a local re-run finds nothing to do...
    again = ingest_paths(empty_db, corpus, OPTIONS)
    assert (again.pages_unchanged, again.pages_written) == (22, 0)
    assert [Path(p).name for p in again.project_files] == ["README.md"]
    # ...and so does a distributed one.
    rerun = ray_ingest_paths(empty_db, corpus, OPTIONS)
    assert (rerun.pages_unchanged, rerun.pages_written, rerun.files_unchanged) == (22, 0, 7)


def _encode_actor_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if b"MapBatches(PageEncoder)" in cmdline.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the encode actor through /proc")
def test_killed_encode_actor_then_crashed_driver_then_resume(
    ray_session: Any, empty_db: str, small_dir: Path, local_small: dict[str, tuple[Any, ...]]
) -> None:
    """One run meets both faults: an encode actor is SIGKILLed after the first page (Ray
    Data restarts it and retries its batch), then the driver dies after a few more
    pages; the same call then finishes the job, skipping what was committed."""

    class DriverCrash(Exception):  # stands in for the driver dying
        pass

    killed: list[int] = []

    def kill_encoder() -> None:
        pids = _encode_actor_pids()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    def crash() -> None:
        raise DriverCrash("the driver dies mid-run")

    options = IngestOptions(dpi=72, batch_size=2)
    bar = Bar([(1, kill_encoder), (5, crash)])
    with pytest.raises(DriverCrash):
        ray_ingest_paths(empty_db, [small_dir], options, progress=bar, encode_batch_size=1)
    assert killed, "no encode actor was running to kill"
    assert bar.done >= 5  # pages after the kill were encoded by the restarted actor
    committed = len(stored(empty_db))
    assert 0 < committed < len(local_small)
    report = ray_ingest_paths(empty_db, [small_dir], options)
    assert report.exit_code == 0
    assert report.pages_unchanged == committed
    assert report.pages_added == len(local_small) - committed
    assert_same_pages(stored(empty_db), local_small)


def test_cli_ingests_on_ray(ray_session: Any, empty_db: str, pdf_dir: Path) -> None:
    from typer.testing import CliRunner

    from latestore.cli import app

    pdf = str(pdf_dir / "nara-bill-of-rights-handout.pdf")
    runner = CliRunner()
    on_ray = runner.invoke(
        app, ["ingest", pdf, "--store", empty_db, "--ray-encoders", "1", "--dpi", "72", "--json"]
    )
    assert on_ray.exit_code == 0, on_ray.output
    assert json.loads(on_ray.stdout)["pages_added"] == 2
    local = runner.invoke(app, ["ingest", pdf, "--store", empty_db, "--dpi", "72", "--json"])
    assert local.exit_code == 0, local.output
    assert json.loads(local.stdout)["pages_unchanged"] == 2


def test_cli_window_flags_on_ray(ray_session: Any, empty_db: str, tmp_path: Path) -> None:
    """``--no-windows`` reaches the Ray encode actors: a new store truncates long pages;
    asking that store for windows afterwards is refused before any Ray work."""
    from typer.testing import CliRunner

    from latestore.cli import app

    notes = tmp_path / "notes.txt"
    notes.write_text(" ".join(f"word{i} stands for sentence {i}." for i in range(400)))
    runner = CliRunner()
    base = ["ingest", str(notes), "--store", empty_db, "--chunk-chars", "4000", "--json"]
    truncating = runner.invoke(app, [*base, "--ray-encoders", "1", "--no-windows"])
    assert truncating.exit_code == 0, truncating.output
    summary = json.loads(truncating.stdout)
    assert summary["page_windows"] == {"windows": False}
    assert summary["pages_added"] >= 1 and summary["pages_truncated"] == summary["pages_added"]
    refused = runner.invoke(app, [*base, "--ray-encoders", "1", "--windows"])
    assert refused.exit_code != 0
    assert "latestore reindex" in refused.output and "--re-encode" in refused.output
