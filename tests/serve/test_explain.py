""" "Why this page" with real encoders: MiniLM text spans, ColPali / ColQwen2 patch grids.

The vision checkpoints are tiny random-weight models written in the real layouts (no
hub here), so these tests check the positions and the arithmetic, not the relevance.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from latestore import Page, PageContent
from latestore.encoders.registry import load_encoder
from latestore.explain import GridPositions, TextPositions, text_positions
from latestore.serve import ServeSettings, create_app
from latestore.store import Store
from tests.encoders.vision_checkpoints import build_colpali, build_colqwen2, build_colqwen3
from tests.serve.conftest import ask

BREAD = "Bread rises because yeast releases carbon dioxide while the dough proves."
COLBERT = "ColBERT scores documents with MaxSim over per-token vectors."


@pytest.fixture(scope="module")
def text_store(tmp_path_factory: pytest.TempPathFactory, minilm: Any) -> Any:
    path = tmp_path_factory.mktemp("text") / "text.db"
    store = Store.open(path, minilm)
    rng = np.random.default_rng(0)
    store.add_pages(
        [
            Page(text=BREAD, external_id="bread", document_id="kitchen.pdf", page_number=3),
            Page(text=COLBERT, external_id="colbert"),
            # Vectors from elsewhere in a MiniLM store, as an older or foreign page would be.
            Page(
                text="carbon dioxide yeast",
                vectors=rng.standard_normal((2, 384)).astype(np.float32),
                external_id="foreign",
            ),
        ]
    )
    yield store, create_app(store, ServeSettings(store=str(path))), path
    store.close()


def test_text_hits_highlight_the_matching_words(text_store: Any) -> None:
    store, app, _ = text_store
    response = ask(app, "POST", "/search", json={"query": "yeast", "k": 1, "explain": True})
    hit = response.json()["hits"][0]
    assert hit["external_id"] == "bread"
    why = hit["explanation"]
    assert why["positions"] == "text" and why["positions_note"] is None
    assert np.isclose(why["score"], hit["score"], atol=1e-3)
    words = {BREAD[h["start"] : h["end"]] for h in why["highlights"]}
    assert "yeast" in words
    labelled = {m["label"]: m for m in why["matches"]}
    assert set(labelled) == {"[CLS]", "yeast", "[SEP]"}
    yeast = labelled["yeast"]
    assert BREAD[yeast["span"][0] : yeast["span"][1]] == "yeast"
    # The shares are the per-token maxima over the score, and sum to one.
    assert np.isclose(sum(m["share"] for m in why["matches"]), 1.0, atol=1e-4)
    page = store.page_vectors(hit["page_id"])
    assert page.shape == (store.get(hit["page_id"]).n_tokens, 384)


def test_explain_endpoint_for_any_page_and_unknown_positions(text_store: Any) -> None:
    _, app, _ = text_store
    colbert = ask(app, "GET", "/pages/2/explain", params={"q": "MaxSim scoring"})
    assert colbert.status_code == 200
    spans = [COLBERT[m["span"][0] : m["span"][1]] for m in colbert.json()["matches"] if m["span"]]
    assert "max" in [s.lower() for s in spans]
    foreign = ask(app, "GET", "/pages/3/explain", params={"q": "yeast"}).json()
    assert foreign["positions"] == "unknown"
    assert "2 stored tokens" in foreign["positions_note"]
    assert all(m["span"] is None for m in foreign["matches"])
    missing = ask(app, "GET", "/pages/77/explain", params={"q": "yeast"})
    assert missing.status_code == 404


def test_windowed_pages_get_positions_for_every_window(minilm: Any) -> None:
    from latestore.encoders.windows import WindowSettings

    windowed = minilm.with_windowing(WindowSettings(enabled=True, stride=100))
    text = " ".join(f"word{i} alpha beta" for i in range(300))
    (vectors,) = windowed.encode_pages([PageContent(text=text)])
    positions = text_positions(windowed, text, len(vectors))
    assert isinstance(positions, TextPositions)
    assert len(positions.spans) == len(vectors)
    covered = [s for s in positions.spans if s is not None]
    assert covered == sorted(covered) and covered[-1][1] == len(text)  # every window, in order
    truncating = minilm.with_windowing(WindowSettings(enabled=False))
    (first_window,) = truncating.encode_pages([PageContent(text=text)])
    truncated = text_positions(truncating, text, len(first_window))
    assert isinstance(truncated, TextPositions) and len(truncated.spans) == 256


def page_png(width: int, height: int) -> bytes:
    image = Image.new("RGB", (width, height), (255, 255, 255))
    for x in range(0, width, 8):
        for y in range(0, height, 8):
            if (x + y) % 16 == 0:
                image.putpixel((x, y), (0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _build_engine_colpali(out: Path) -> Path:
    from tests.oracle.reference_gemma import build_engine_colpali

    return build_engine_colpali(out)  # skips where colpali-engine is not installed


def _build_engine_qwen(key: str) -> Any:
    def build(out: Path) -> Path:
        from tests.oracle.reference import build_engine_qwen

        return build_engine_qwen(key, out)  # skips where colpali-engine is not installed

    return build


def _build_engine_colgemma3(out: Path) -> Path:
    from tests.oracle.reference_gemma import build_engine_colgemma3

    return build_engine_colgemma3(out)  # skips where colpali-engine is not installed


QWEN_IN_ENGINE_LAYOUT = ["engine-colqwen2", "engine-colqwen3", "engine-colqwen3.5"]
SQUARE = ("colpali-engine", "colgemma3")  # the image tokens, then the prompt's text


@pytest.mark.parametrize(
    "family",
    ["colpali", "colqwen2", *SQUARE, "colqwen3", *QWEN_IN_ENGINE_LAYOUT],
)
def test_image_hits_carry_a_patch_grid_heatmap(tmp_path: Path, family: str) -> None:
    build = {
        "colpali": build_colpali,
        "colqwen2": build_colqwen2,
        "colpali-engine": _build_engine_colpali,
        "colgemma3": _build_engine_colgemma3,
        "colqwen3": build_colqwen3,  # Tomoro's naming
        "engine-colqwen2": _build_engine_qwen("colqwen2"),
        "engine-colqwen3": _build_engine_qwen("colqwen3"),
        "engine-colqwen3.5": _build_engine_qwen("colqwen3.5-128"),
    }[family]
    options = {"max_pixels": 16 * 28 * 28} if family == "colqwen2" else {}
    encoder = load_encoder(build(tmp_path / family), **options)
    with Store.open(tmp_path / "v.db", encoder) as store:
        store.add_pages([Page(image=page_png(112, 168), external_id="scan", page_number=1)])
        app = create_app(store, ServeSettings(store=str(tmp_path / "v.db")))
        response = ask(app, "POST", "/search", json={"query": "a chart", "k": 1, "explain": True})
        assert response.status_code == 200, response.text
        hit = response.json()["hits"][0]
        why = hit["explanation"]
        assert why["positions"] == "image", why["positions_note"]
        heatmap = why["heatmap"]
        grid = app.state.service.positions(store.get(1), why["page_tokens"])
        assert isinstance(grid, GridPositions)
        assert (heatmap["rows"], heatmap["cols"]) == (grid.rows, grid.cols)
        if family == "colpali":
            assert (grid.rows, grid.cols) == (2, 2)  # image_seq_length 4: a square grid
        elif family in SQUARE:
            patches = [c for c in grid.cells if c is not None]
            # The tiny ColGemma3 pools its patches to one token (mm_tokens_per_image 1).
            assert grid.rows == grid.cols and len(patches) == grid.rows * grid.cols
            assert len(patches) > 1 or family == "colgemma3"
            assert len(grid.cells) > len(patches)  # and the prompt's text tokens
        else:
            assert grid.rows > grid.cols  # the Qwen-VL families keep the portrait shape
            patches = [c for c in grid.cells if c is not None]
            assert len(patches) == grid.rows * grid.cols < len(grid.cells)  # and a prompt
        # Each cell is that patch's best similarity with any query token.
        query = app.state.service.query_vectors("a chart")[0]
        sims = query @ store.page_vectors(1).T
        for token, cell in enumerate(grid.cells):
            if cell is not None:
                assert np.isclose(
                    heatmap["values"][cell[0]][cell[1]], sims[:, token].max(), atol=1e-4
                )
        for match in why["matches"]:
            cell = grid.cells[match["page_token"]]
            assert match["cell"] == (list(cell) if cell is not None else None)
        assert np.isclose(why["score"], hit["score"], atol=1e-2)


def test_uploads_stay_in_their_folder_and_are_idempotent(text_store: Any, tmp_path: Path) -> None:
    store, _, path = text_store
    folder = tmp_path / "uploads"
    app = create_app(store, ServeSettings(store=str(path), upload_dir=folder))
    body = b"Sourdough starters need regular feeding.\n\nRye flour ferments quickly."
    files = {"files": ("../../../../tmp/evil-upload.txt", body, "text/plain")}
    first = ask(app, "POST", "/upload", files=files, data={"metadata": '{"team": "bakery"}'})
    assert first.status_code == 200, first.text
    assert first.json()["pages_added"] == 1  # two short paragraphs make one page
    assert not Path("/tmp/evil-upload.txt").exists()
    assert list(folder.iterdir()) == []  # the copy is gone; pages keep their text
    ids = store.page_ids({"team": "bakery"})
    documents = {p.document_id for p in store.get_many(ids)}
    (document,) = documents
    # Named by its digest folder and flattened name: the server's folder is not shown.
    assert document == f"{hashlib.sha256(body).hexdigest()[:24]}/evil-upload.txt"
    again = ask(app, "POST", "/upload", files=files, data={"metadata": '{"team": "bakery"}'})
    assert again.json()["pages_added"] == 0 and again.json()["pages_unchanged"] == 1
    bad = ask(app, "POST", "/upload", files=files, data={"metadata": "[1]"})
    assert bad.status_code == 400


def test_a_grid_cell_without_a_token_has_no_value() -> None:
    from latestore.explain import explain

    grid = GridPositions(rows=2, cols=2, cells=[None, (0, 0), (0, 1), (1, 1)])
    query = np.eye(4, dtype=np.float32)[:2]
    why = explain(9, query, np.eye(4, dtype=np.float32), grid)
    assert why.heatmap is not None
    assert why.heatmap.values[1][0] is None  # no token sits there
    assert why.heatmap.values[0][0] == 1.0 and why.heatmap.values[0][1] == 0.0
    assert [m.cell for m in why.matches] == [None, (0, 0)]
    assert why.score == 2.0 and [m.share for m in why.matches] == [0.5, 0.5]


def test_hits_deleted_after_ranking_are_left_out_of_explanations(tmp_path: Path) -> None:
    # Explained hits read their pages and their vectors in one query each (still_stored),
    # retrying without the pages a concurrent delete removed, not one read per hit.
    from latestore.store.reader import still_stored
    from tests.helpers import precomputed_store, unit_vectors

    rng = np.random.default_rng(7)
    with precomputed_store(tmp_path / "s.db", dim=8) as store:
        ids = store.add_pages([Page(vectors=unit_vectors(rng, 3, 8)) for _ in range(6)])
        store.delete([ids[1], ids[4]])
        asked = [ids[5], ids[1], ids[0], 10**6, ids[4], ids[2]]
        alive = still_stored(store.get_many, asked)
        assert [p.page_id for p in alive.values()] == [ids[5], ids[0], ids[2]]
        vectors = still_stored(store.page_vectors_many, asked)
        assert list(vectors) == [ids[5], ids[0], ids[2]]
        assert all(v.shape == (3, 8) for v in vectors.values())
        assert still_stored(store.get_many, [ids[1]]) == {}
