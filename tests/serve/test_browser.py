"""The search page in a real browser: headless Chromium from the distribution's package
(Debian's `chromium`; .ci/run installs it), driven by Playwright.

Skips, saying why, where Chromium or Playwright is absent. The stores are built from the
shared PDFs: one with a tiny random-weight ColPali (the heatmap's geometry is real, its
values are not: no hub here), one with the default MiniLM (real text matches).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from latestore.encoders.registry import load_encoder
from latestore.ingest import IngestOptions, ingest_paths
from latestore.serve import ServeSettings, create_app
from latestore.store import Store
from tests.encoders.vision_checkpoints import build_colpali
from tests.serve.live import live_server

PDFS = (
    "nara-bill-of-rights-handout.pdf",
    "fbi-nics-background-checks-2015-11.pdf",
    "us-senate-expenditures.pdf",
    "faa-amt-handbook-sample.pdf",
)
SCREENSHOTS = os.environ.get("LATESTORE_SCREENSHOT_DIR")


def chromium_path() -> str:
    found = os.environ.get("LATESTORE_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None
    )
    if found is None:
        pytest.skip("no Chromium: install Debian's `chromium` package (.ci/run does)")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    executable = chromium_path()
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


def pdf_paths(shared_data: Path) -> list[Path]:
    paths = [shared_data / "pdfs" / name for name in PDFS]
    if not all(p.exists() for p in paths):
        pytest.skip("the shared PDFs are not all present")
    return paths


def keep(screenshot: Path) -> None:
    if SCREENSHOTS:  # for a person to look at: copied out of the test's temp folder
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(SCREENSHOTS) / screenshot.name)


def search(page: Any, base: str, query: str) -> None:
    page.goto(base)
    page.fill("#q", query)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-searched]")
    page.wait_for_function(
        "[...document.querySelectorAll('img.thumb')].every(i => i.complete && i.naturalWidth > 0)"
    )


def test_thumbnails_and_heatmap_render(browser: Any, shared_data: Path, tmp_path: Path) -> None:
    encoder = load_encoder(build_colpali(tmp_path / "colpali"))
    db = tmp_path / "pdfs.db"
    report = ingest_paths(db, pdf_paths(shared_data), IngestOptions(dpi=40), encoder=encoder)
    assert report.pages_added == 5, report.to_dict()
    with (
        Store.open(db, encoder) as store,
        live_server(create_app(store, ServeSettings(store=str(db)))) as base,
    ):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        search(page, base, "background checks by month")
        results = page.locator("article.result")
        assert results.count() == 5
        assert page.locator("article.result img.thumb").count() == 5
        cells = page.eval_on_selector_all(
            "article.result canvas.heatmap", "els => els.map(e => Number(e.dataset.cells))"
        )
        assert cells == [4] * 5  # ColPali's 2x2 patch grid on every page
        assert "score" in results.first.inner_text() and "page" in results.first.inner_text()
        results.first.click()
        page.wait_for_selector("#viewer.open canvas.heatmap")
        shot = tmp_path / "serve-colpali-heatmap.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        keep(shot)


def test_text_matches_are_highlighted(browser: Any, shared_data: Path, tmp_path: Path) -> None:
    db = tmp_path / "text.db"
    report = ingest_paths(db, pdf_paths(shared_data), IngestOptions(dpi=40))
    assert report.pages_added == 5, report.to_dict()
    with (
        Store.open(db) as store,
        live_server(create_app(store, ServeSettings(store=str(db)))) as base,
    ):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        # MiniLM reads a page's first 256 tokens: this passage is among them on page 2.
        search(page, base, "compelled to be a witness against himself in a criminal case")
        first = page.locator("article.result").first
        assert "nara-bill-of-rights-handout.pdf · page 2" in first.inner_text()
        first.click()
        page.wait_for_selector("#viewer.open mark")
        marked = [m.lower() for m in page.locator("#viewer mark").all_inner_texts()]
        assert {"witness", "himself", "criminal"} <= set(marked), marked
        shot = tmp_path / "serve-minilm-highlights.png"
        page.screenshot(path=str(shot), full_page=True)
        keep(shot)
