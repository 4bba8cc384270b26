"""Query tokens grouped into words, and a heatmap per query word on image pages (a tiny
random-weight ColQwen2: its geometry and arithmetic are real, its relevance is not)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from latestore import Page
from latestore.encoders.registry import load_encoder
from latestore.explain import QueryWord, group_words, word_around
from latestore.serve import ServeSettings, create_app
from latestore.store import Store
from tests.encoders.vision_checkpoints import build_colqwen2
from tests.serve.test_search_http import ask


def test_wordpiece_pieces_merge_and_specials_are_named() -> None:
    pieces = ["[CLS]", "trust", "##worth", "##iness", "of", "yeast", "[SEP]", "[MASK]", "[MASK]"]
    words = group_words(pieces, {"[CLS]", "[SEP]", "[MASK]"}, "Trustworthiness of yeast", True)
    assert words == [
        QueryWord("start of query ([CLS])", "special", (0,)),
        QueryWord("trustworthiness", "word", (1, 2, 3)),
        QueryWord("of", "word", (4,)),
        QueryWord("yeast", "word", (5,)),
        QueryWord("end of query ([SEP])", "special", (6,)),
        QueryWord("query expansion (2 tokens)", "expansion", (7, 8)),
    ]


def test_byte_level_pieces_and_a_prompt_the_user_did_not_type() -> None:
    pieces = ["Query", ":", "Ġtrust", "worth", "iness", "Ġby", "Ġmonth", "<|endoftext|>", "Ċ"]
    words = group_words(pieces, {"<|endoftext|>"}, "trustworthiness by month", False)
    assert [(w.text, w.kind) for w in words] == [
        ("Query:", "prompt"),
        ("trustworthiness", "word"),
        ("by", "word"),
        ("month", "word"),
        ("query expansion (1 token)", "expansion"),
        ("line break", "special"),
    ]
    # The prompt's "Query:" is not the typed "query", which still counts as typed.
    typed = group_words(["Query", ":", "Ġquery", "Ġplan"], set(), "query plan", False)
    assert [(w.text, w.kind) for w in typed] == [
        ("Query:", "prompt"),
        ("query", "word"),
        ("plan", "word"),
    ]


def test_word_around_widens_a_piece_to_its_word() -> None:
    text = "the trustworthiness, of all"
    start = text.index("worth")
    assert text[slice(*word_around(text, start, start + 5))] == "trustworthiness"
    assert word_around(text, 0, 3) == (0, 3)


def page_png(width: int, height: int) -> bytes:
    image = Image.new("RGB", (width, height), (240, 240, 240))
    for x in range(0, width, 8):
        for y in range(0, height, 8):
            if (x + y) % 24 == 0:
                image.putpixel((x, y), (20, 20, 200))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_a_heatmap_per_query_word_on_an_image_page(tmp_path: Path) -> None:
    encoder = load_encoder(build_colqwen2(tmp_path / "colqwen2"), max_pixels=16 * 28 * 28)
    with Store.open(tmp_path / "v.db", encoder) as store:
        store.add_pages([Page(image=page_png(112, 168), external_id="scan", page_number=1)])
        app = create_app(store, ServeSettings(store=str(tmp_path / "v.db")))
        query = "fuel chart"
        whole = ask(app, "POST", "/explain", json={"query": query, "page_id": 1}).json()
        words = whole["words"]
        assert [w["text"] for w in words if w["kind"] == "word"] == ["fuel", "chart"]
        assert any(w["kind"] == "prompt" for w in words)  # ColQwen2's "Query:" prompt
        assert any(w["kind"] == "expansion" for w in words)
        aggregate = whole["heatmap"]
        assert aggregate["word"] is None and "any query token" in aggregate["what"]
        shown = [v for row in aggregate["values"] for v in row if v is not None]
        assert np.isclose(aggregate["low"], min(shown)) and np.isclose(
            aggregate["high"], max(shown)
        )
        index = next(i for i, w in enumerate(words) if w["text"] == "chart")
        one = ask(app, "GET", f"/pages/1/explain?q={query}&word={index}").json()["heatmap"]
        assert one["word"] == index and "“chart”" in one["what"]
        vectors: Any = app.state.service.query_vectors(query)[0]
        sims = vectors[words[index]["tokens"]] @ store.page_vectors(1).T
        grid = app.state.service.positions(store.get(1), whole["page_tokens"])
        for token, cell in enumerate(grid.cells):
            if cell is not None:
                assert np.isclose(one["values"][cell[0]][cell[1]], sims[:, token].max(), atol=1e-4)
        # Every patch match is placed in words; the prompt's tokens are said to be text.
        wheres = {m["where"] for m in whole["matches"]}
        assert all(w.startswith("image patch at row") or "prompt" in w for w in wheres), wheres
        bad = ask(app, "POST", "/explain", json={"query": query, "page_id": 1, "word": 99})
        assert bad.status_code == 400 and bad.json()["error"] == "InvalidInputError"
