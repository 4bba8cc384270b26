"""The search page in a real browser: headless Chromium from the distribution's package
(Debian's `chromium`; .ci/run installs it), driven by Playwright, audited with axe-core
(from the axe-playwright-python package: nothing is fetched at run time).

Skips, saying why, where Chromium or Playwright is absent. The stores are built from the
shared PDFs: one with the default MiniLM (real text matches), one with a tiny
random-weight ColQwen2 (the heatmaps' geometry is real, their values are not: no hub).
Every request the browser makes must stay on loopback.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from latestore.encoders.registry import load_encoder
from latestore.ingest import IngestOptions, ingest_paths
from latestore.serve import ServeSettings, create_app
from latestore.store import Store
from tests.encoders.vision_checkpoints import build_colqwen2
from tests.serve.live import live_server

PDFS = (
    "nara-bill-of-rights-handout.pdf",
    "fbi-nics-background-checks-2015-11.pdf",
    "us-senate-expenditures.pdf",
    "faa-amt-handbook-sample.pdf",
)
MORE_PDFS = ("us-treasury-fy2024-financial-report-executive-summary.pdf",)  # 10 pages: paging
SCREENSHOTS = os.environ.get("LATESTORE_SCREENSHOT_DIR")
WITNESS = "compelled to be a witness against himself in a criminal case"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


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


def pdf_paths(shared_data: Path, names: tuple[str, ...] = PDFS) -> list[Path]:
    paths = [shared_data / "pdfs" / name for name in names]
    if not all(p.exists() for p in paths):
        pytest.skip("the shared PDFs are not all present")
    return paths


def keep(page: Any, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 5_000
    if SCREENSHOTS:  # for a person to look at: copied out of the test's temp folder
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(SCREENSHOTS) / name)


class Offline:
    """A browser context whose requests must stay on loopback: any other is refused and
    recorded, so a page that reaches for a CDN fails the test."""

    def __init__(self, browser: Any, viewport: dict[str, int]) -> None:
        self.context = browser.new_context(viewport=viewport)
        self.outside: list[str] = []
        self.requests: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("request", lambda request: self.requests.append(request.url))

    def _route(self, route: Any) -> None:
        host = urlparse(route.request.url).hostname
        if host in ("127.0.0.1", "localhost", "::1"):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def close(self) -> None:
        self.context.close()
        assert self.requests, "the page made no requests at all"
        assert not self.outside, self.outside


def audit(page: Any) -> dict[str, Any]:
    """axe-core's audit of the page as it is now; fails on serious or critical issues."""
    from axe_playwright_python.sync_playwright import Axe

    response = Axe().run(page).response
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, bad
    rules = {r["id"] for key in ("passes", "violations", "incomplete") for r in response[key]}
    assert len(rules) > 20  # the audit ran its rules
    return response


def search(page: Any, query: str) -> None:
    page.fill("#q", query)
    page.press("#q", "Enter")
    page.wait_for_selector("body[data-searched]")


def params(page: Any) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


@pytest.fixture(scope="module")
def text_server(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("page") / "text.db"
    paths = pdf_paths(shared_data) + pdf_paths(shared_data, MORE_PDFS)
    report = ingest_paths(db, paths, IngestOptions(dpi=40))
    assert report.pages_added == 15, report.to_dict()
    with (
        Store.open(db) as store,
        live_server(create_app(store, ServeSettings(store=str(db)))) as base,
    ):
        yield base


def test_a_text_pdf_query_with_its_explanation(
    browser: Any, text_server: str, tmp_path: Path
) -> None:
    offline = Offline(browser, DESKTOP)
    page = offline.page
    page.goto(text_server)
    page.wait_for_selector("body[data-ready]")
    # The start page: a heading, the store, and example queries (no history yet).
    assert page.locator("h1").inner_text().startswith("latestore")
    summary = page.locator("#summary").inner_text()
    assert "15" in summary and "maxsim" in summary and "lexical" in summary
    assert page.locator("#suggestions h3").inner_text() == "Example queries"
    assert page.locator("#suggestions button").count() >= 2
    for control in ("#q", "#mode", "#phrase", "#filter", "#k", "#exhaustive"):
        assert page.locator(control).evaluate("e => e.labels.length") == 1, control
    audit(page)
    keep(page, tmp_path, "desktop-start.png")

    search(page, WITNESS)
    assert params(page)["q"] == [WITNESS]
    first = page.locator("article.result").first
    assert "nara-bill-of-rights-handout.pdf · page 2" in first.inner_text()
    # The card shows the matched passage with its words marked, not a thumbnail.
    marks = {m.lower() for m in first.locator("mark").all_inner_texts()}
    assert {"witness", "criminal"} <= marks, marks
    assert first.locator("img").count() == 0
    audit(page)
    keep(page, tmp_path, "desktop-results.png")

    # Keyboard: Enter opens the focused result, Escape closes it and focus comes back.
    # Tab from the query box reaches the first result, and its focus is visible.
    page.focus("#q")
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.matches('article.result')"):
            break
    assert page.evaluate("document.activeElement.dataset.pageId") == first.get_attribute(
        "data-page-id"
    )
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), outline
    page.keyboard.press("Enter")
    page.wait_for_selector("#viewer:not([hidden]) table.why")
    opened = params(page)["open"][0]
    assert first.get_attribute("data-page-id") == opened
    headers = page.locator("#viewer table.why thead th").all_inner_texts()
    assert headers == ["Query word", "Matched on the page", "Similarity", "Share of score"]
    rows = page.locator("#viewer table.why tbody th").all_inner_texts()
    assert "witness" in rows and not any(r.startswith("##") for r in rows), rows
    # The explanation sits beside the page, not below it.
    text_box = page.locator(".page-pane").bounding_box()
    why_box = page.locator(".why-pane").bounding_box()
    assert why_box["x"] > text_box["x"] + text_box["width"] - 1
    assert why_box["y"] < text_box["y"] + 50
    assert page.evaluate("document.activeElement.id") == "close"
    audit(page)
    keep(page, tmp_path, "desktop-text-explanation.png")
    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer[hidden]", state="attached")
    assert "open" not in params(page)
    assert page.evaluate("document.activeElement.dataset.pageId") == opened

    # Back and forward walk the states: the viewer again, then closed.
    page.go_back()
    page.wait_for_selector("#viewer:not([hidden])")
    page.go_back()
    page.wait_for_selector("#viewer[hidden]", state="attached")
    assert params(page)["q"] == [WITNESS] and "open" not in params(page)

    # Another search, then back to the first one: the form and results follow the URL.
    page.select_option("#mode", "lexical")
    search(page, "federal debt and deficit")
    assert params(page)["mode"] == ["lexical"]
    assert "lexical" in page.locator("#status").inner_text()
    page.go_back()
    page.wait_for_function(f"() => document.querySelector('#q').value === {WITNESS!r}")
    page.wait_for_function("() => document.querySelector('#mode').value === ''")
    page.wait_for_selector("li:first-child > article.result >> text=nara-bill-of-rights")

    # Paging: the next ten, in the URL.
    page.click("#next")
    page.wait_for_function("() => new URLSearchParams(location.search).get('offset') === '10'")
    page.wait_for_selector("li:first-child > article.result .meta >> text=/^#11 /")
    assert page.locator("#next").is_disabled()
    offline.close()


def test_a_bookmarked_search_opens_as_it_was(browser: Any, text_server: str) -> None:
    offline = Offline(browser, DESKTOP)
    page = offline.page
    page.goto(f"{text_server}/?q=background+checks&phrase=background&exhaustive=1")
    page.wait_for_selector("body[data-searched]")
    assert page.locator("#phrase").input_value() == "background"
    assert page.locator("#exhaustive").is_checked()
    hit = page.locator("article.result").first.get_attribute("data-page-id")
    page.goto(f"{text_server}/?q=background+checks&open={hit}")
    page.wait_for_selector("#viewer:not([hidden]) table.why")
    # A bad filter is said in words, and the page stays usable.
    page.goto(f"{text_server}/?q=x&filter=%7B%22nope%22%3A1%7D")
    page.wait_for_selector("#status.error")
    assert "UnknownFilterFieldError" in page.locator("#status").inner_text()
    offline.close()


def test_phone_width(browser: Any, text_server: str, tmp_path: Path) -> None:
    offline = Offline(browser, PHONE)
    page = offline.page
    page.goto(text_server)
    page.wait_for_selector("body[data-ready]")
    search(page, WITNESS)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    audit(page)
    keep(page, tmp_path, "phone-results.png")
    page.locator("article.result").first.click()
    page.wait_for_selector("#viewer:not([hidden]) table.why")
    # Stacked: the explanation under the page, both as wide as the screen.
    text_box = page.locator(".page-pane").bounding_box()
    why_box = page.locator(".why-pane").bounding_box()
    assert why_box["y"] >= text_box["y"] + text_box["height"] - 1
    assert why_box["width"] <= PHONE["width"]
    audit(page)
    page.locator(".why-pane").scroll_into_view_if_needed()
    keep(page, tmp_path, "phone-explanation.png")
    offline.close()


def test_api_docs_work_offline(browser: Any, text_server: str) -> None:
    offline = Offline(browser, DESKTOP)
    page = offline.page
    page.goto(f"{text_server}/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "latestore" in page.locator(".swagger-ui .info .title").inner_text()
    page.wait_for_selector("text=/search")
    page.goto(f"{text_server}/redoc")
    page.wait_for_selector("text=Rank pages for one query")
    offline.close()


def test_image_pages_have_a_heatmap_per_word(
    browser: Any, shared_data: Path, tmp_path: Path
) -> None:
    encoder = load_encoder(build_colqwen2(tmp_path / "colqwen2"), max_pixels=48 * 28 * 28)
    db = tmp_path / "pdfs.db"
    report = ingest_paths(db, pdf_paths(shared_data), IngestOptions(dpi=40), encoder=encoder)
    assert report.pages_added == 5, report.to_dict()
    with (
        Store.open(db, encoder) as store,
        live_server(create_app(store, ServeSettings(store=str(db)))) as base,
    ):
        offline = Offline(browser, DESKTOP)
        page = offline.page
        page.goto(base)
        page.wait_for_selector("body[data-ready]")
        assert "reads page images" in page.locator("#summary").inner_text()
        search(page, "background checks by month")
        page.wait_for_function(
            "() => [...document.querySelectorAll('img.thumb')]"
            ".every(i => i.complete && i.naturalWidth)"
        )
        assert page.locator("article.result img.thumb").count() == 5
        cells = page.eval_on_selector_all(
            "article.result canvas.heatmap", "els => els.map(e => Number(e.dataset.cells))"
        )
        assert len(cells) == 5 and all(c > 4 for c in cells), cells
        page.locator("article.result").first.click()
        page.wait_for_selector("#viewer:not([hidden]) .page-pane canvas.heatmap")
        legend = page.locator("#heat-legend").inner_text()
        assert "any query token" in legend
        headers = page.locator("#viewer table.why thead th").all_inner_texts()
        assert headers[-1] == "Heatmap" and headers[1] == "Best place on the page"
        rows = page.locator("#viewer table.why tbody th").all_inner_texts()
        assert {"background", "checks", "by", "month"} <= set(rows), rows
        place = page.locator("#viewer table.why tbody tr").nth(rows.index("checks"))
        # Random weights: the best place may be a patch or the page prompt's text; either
        # is said in words.
        said = place.inner_text()
        assert "image patch at row" in said or "prompt text" in said, said
        button = page.get_by_role("button", name="Heatmap of “checks”")
        button.click()
        page.wait_for_selector("#heat-legend >> text=“checks”")
        assert button.get_attribute("aria-pressed") == "true"
        assert page.locator(".page-pane canvas.heatmap").get_attribute("data-word") != ""
        audit(page)
        keep(page, tmp_path, "desktop-image-word-heatmap.png")
        button.click()  # again: back to every word
        page.wait_for_selector("#heat-legend >> text=any query token")
        offline.close()
