"""Every search of Store.search over HTTP: modes, phrase, filter, exhaustive, paging, and
the store's own validation as typed JSON errors. A tiny text store with the default
MiniLM encoder, on SQLite and (with LATESTORE_TEST_PG_URL) PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from latestore import Page
from latestore.serve import ServeSettings, create_app
from latestore.store import Store
from tests.serve.conftest import ask

TEXTS = [
    ("Bread rises because yeast releases carbon dioxide while the dough proves.", 2020),
    ("Sourdough bread needs a starter of wild yeast and lactic bacteria.", 2021),
    ("The trustworthiness of a witness decides many criminal trials.", 2022),
    ("A witness may not be compelled to testify against himself.", 2022),
    ("Jet engines compress air, burn fuel and expand the hot gas.", 2023),
    ("Aircraft maintenance technicians inspect turbine blades for cracks.", 2023),
    ("Yeast ferments sugar into alcohol and carbon dioxide in beer.", 2024),
    ("The senate approved expenditures for the fiscal year.", 2024),
]
QUERY = "yeast and carbon dioxide"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def text_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, minilm: Any
) -> Iterator[tuple[Store, Any]]:
    if request.param == "sqlite":
        url = str(tmp_path_factory.mktemp("http") / "text.db")
        yield from _serve(url, minilm)
        return
    admin = os.environ.get("LATESTORE_TEST_PG_URL")
    if not admin:
        pytest.skip("PostgreSQL variant: set LATESTORE_TEST_PG_URL")
    from tests.postgres import fresh_database

    home = os.environ.get("HOME")
    os.environ["HOME"] = str(tmp_path_factory.mktemp("home"))  # the index cache, per run
    try:
        with fresh_database(admin) as url:
            yield from _serve(url, minilm)
    finally:
        if home is not None:
            os.environ["HOME"] = home


def _serve(url: str, minilm: Any) -> Iterator[tuple[Store, Any]]:
    store = Store.open(url, minilm)
    store.add_pages(
        [
            Page(
                text=text,
                external_id=f"p{i}",
                document_id=f"doc{i % 3}.pdf",
                page_number=i + 1,
                metadata={"year": year},
            )
            for i, (text, year) in enumerate(TEXTS)
        ]
    )
    try:
        yield store, create_app(store, ServeSettings(store=url))
    finally:
        store.close()


def post(app: Any, body: dict[str, Any]) -> httpx.Response:
    return ask(app, "POST", "/search", json=body)


def ids_scores(hits: list[Any]) -> list[tuple[int, float]]:
    return [(h["page_id"] if isinstance(h, dict) else h.page_id, round(_score(h), 4)) for h in hits]


def _score(hit: Any) -> float:
    return float(hit["score"] if isinstance(hit, dict) else hit.score)


@pytest.mark.parametrize("mode", ["maxsim", "lexical", "hybrid"])
def test_each_mode_answers_as_store_search(text_store: Any, mode: str) -> None:
    store, app = text_store
    for explain in (False, True):
        response = post(app, {"query": QUERY, "k": 4, "mode": mode, "explain": explain})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["mode"] == mode and body["offset"] == 0 and body["k"] == 4
        direct = store.search(QUERY, k=4, mode=mode)
        assert ids_scores(body["hits"]) == ids_scores(direct)
        assert [h["signals"] for h in body["hits"]] == [list(h.signals) for h in direct]
        if mode == "lexical":
            assert all(h["lexical_score"] is not None for h in body["hits"])
        if explain:
            assert all(h["explanation"] is not None for h in body["hits"])
    # The lexical mode finds the pages with the words; the first of them holds both.
    lexical = post(app, {"query": QUERY, "k": 8, "mode": "lexical"}).json()["hits"]
    assert "yeast" in lexical[0]["text"].lower()


def test_phrase_filter_and_exhaustive(text_store: Any) -> None:
    store, app = text_store
    body = {"query": "bread", "k": 8, "phrase": "carbon dioxide", "exhaustive": True}
    hits = post(app, body).json()["hits"]
    assert hits and all("carbon dioxide" in h["text"] for h in hits)
    assert ids_scores(hits) == ids_scores(
        store.search("bread", k=8, phrase="carbon dioxide", exhaustive=True)
    )
    year = {"year": {"$gte": 2023}}
    filtered = post(app, {"query": QUERY, "k": 8, "filter": year, "mode": "hybrid"}).json()
    assert filtered["hits"] and all(h["metadata"]["year"] >= 2023 for h in filtered["hits"])
    assert ids_scores(filtered["hits"]) == ids_scores(
        store.search(QUERY, k=8, filter=year, mode="hybrid")
    )


def test_offset_and_cursor_pages_make_the_whole_ranking(text_store: Any) -> None:
    store, app = text_store
    whole = store.search(QUERY, k=8, exhaustive=True)
    second = post(app, {"query": QUERY, "k": 3, "offset": 3, "exhaustive": True}).json()
    assert ids_scores(second["hits"]) == ids_scores(whole[3:6])
    assert [h["rank"] for h in second["hits"]] == [4, 5, 6]
    assert second["next_offset"] == 6
    seen: list[Any] = []
    body: dict[str, Any] = {"query": QUERY, "k": 3, "exhaustive": True, "explain": True}
    for _ in range(5):
        page = post(app, body).json()
        seen += page["hits"]
        if page["next_cursor"] is None:
            break
        body["cursor"] = page["next_cursor"]
    assert page["next_offset"] is None and page["next_cursor"] is None
    assert ids_scores(seen) == ids_scores(whole)
    assert [h["rank"] for h in seen] == list(range(1, len(whole) + 1))


def test_paging_errors_are_typed(text_store: Any) -> None:
    _, app = text_store
    first = post(app, {"query": QUERY, "k": 2}).json()
    cases = [
        # A cursor continues its own search only.
        ({"query": "jet engines", "k": 2, "cursor": first["next_cursor"]}, 400, "BadCursorError"),
        ({"query": QUERY, "k": 3, "cursor": first["next_cursor"]}, 400, "BadCursorError"),
        ({"query": QUERY, "k": 2, "cursor": "not-a-cursor"}, 400, "BadCursorError"),
        ({"query": QUERY, "k": 2, "offset": 2, "cursor": "x"}, 422, "ValidationError"),
        ({"query": QUERY, "offset": -1}, 422, "ValidationError"),
        ({"query": QUERY, "offset": 9_995, "k": 10}, 400, "InvalidInputError"),
    ]
    for body, status, name in cases:
        response = post(app, body)
        assert (response.status_code, response.json()["error"]) == (status, name), response.text
        assert response.json()["status"] == status and response.json()["message"]
    same = post(app, {"query": QUERY, "k": 2, "cursor": first["next_cursor"]})
    assert same.status_code == 200 and same.json()["offset"] == 2


def test_validation_is_the_stores(text_store: Any, rng: np.random.Generator) -> None:
    store, app = text_store
    vectors = rng.standard_normal((3, 384)).tolist()
    cases: list[tuple[dict[str, Any], int, str, dict[str, Any] | None]] = [
        ({"query": QUERY, "mode": "fuzzy"}, 400, "InvalidInputError", {"mode": "fuzzy"}),
        ({"query": QUERY, "phrase": "  "}, 400, "InvalidInputError", {"phrase": "  "}),
        ({"query": QUERY, "phrase": "x" * 2001}, 400, "InvalidInputError", {"phrase": "x" * 2001}),
        ({"query": QUERY, "k": 0}, 400, "InvalidInputError", {"k": 0}),
        ({"query": QUERY, "filter": {"nope": 1}}, 400, "UnknownFilterFieldError", None),
        ({"query": vectors, "mode": "lexical"}, 400, "InvalidInputError", None),
        ({"query": QUERY, "mode": 5}, 422, "ValidationError", None),
        ({"query": QUERY, "phrase": ["a"]}, 422, "ValidationError", None),
        ({"query": QUERY, "k": "ten"}, 422, "ValidationError", None),
        ({"query": QUERY, "exhaustive": "often"}, 422, "ValidationError", None),
        ({"query": QUERY, "sort": "date"}, 422, "ValidationError", None),
    ]
    for body, status, name, direct in cases:
        response = post(app, body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"] == name, response.text
        if direct is not None:  # the same words as the store's own exception
            kwargs = {"k": direct.pop("k", 10), **direct}
            with pytest.raises(Exception) as raised:
                store.search(QUERY, **kwargs)
            assert response.json()["message"] == str(raised.value)
    # Vectors with their words given: the lexical mode needs no encoder for them.
    words = post(app, {"query": vectors, "mode": "lexical", "lexical_text": "jet engines"})
    assert words.status_code == 200 and "Jet engines" in words.json()["hits"][0]["text"]


def test_explanations_speak_in_words(text_store: Any) -> None:
    _, app = text_store
    query = "trustworthiness of a witness"
    hit = post(app, {"query": query, "k": 1, "explain": True}).json()["hits"][0]
    why = hit["explanation"]
    words = why["words"]
    typed = [w["text"] for w in words if w["kind"] == "word"]
    assert typed == ["trustworthiness", "of", "a", "witness"]
    pieces = next(w for w in words if w["text"] == "trustworthiness")["tokens"]
    assert len(pieces) > 1  # MiniLM's WordPiece cuts it; shown as one word
    specials = [w["text"] for w in words if w["kind"] == "special"]
    assert specials == ["start of query ([CLS])", "end of query ([SEP])"]
    assert sorted(t for w in words for t in w["tokens"]) == list(range(len(why["matches"])))
    assert np.isclose(sum(w["share"] for w in words), 1.0, atol=1e-4)
    assert np.isclose(sum(w["similarity"] for w in words), why["score"], atol=1e-3)
    # Highlights and page words are whole words of the page text.
    text = hit["text"]
    for mark in why["highlights"]:
        piece = text[mark["start"] : mark["end"]]
        assert piece.strip() == piece and piece.replace("'", "").isalnum(), piece
    witness = next(w for w in words if w["text"] == "witness")
    assert witness["page_words"][0].lower() == "witness"
    match = why["matches"][witness["tokens"][0]]
    assert match["word"] == words.index(witness) and match["where"] == "“witness” in the text"


def test_openapi_documents_every_search_field_and_the_version(text_store: Any) -> None:
    _, app = text_store
    schema = ask(app, "GET", "/openapi.json").json()
    assert schema["info"]["version"] == version("latestore")
    fields = schema["components"]["schemas"]["SearchRequest"]["properties"]
    expected = {"query", "queries", "k", "mode", "phrase", "lexical_text", "filter"}
    assert expected | {"exhaustive", "explain", "offset", "cursor"} <= set(fields)
    assert all(fields[name].get("description") for name in ("k", "mode", "phrase", "cursor"))
    assert {"maxsim", "lexical", "hybrid"} <= set(fields["mode"]["enum"])
    assert fields["k"]["minimum"] == 1 and fields["k"]["maximum"] == 10_000
    assert "/summary" in schema["paths"]


def test_docs_and_redoc_need_no_internet(text_store: Any) -> None:
    _, app = text_store
    for path in ("/docs", "/redoc"):
        page = ask(app, "GET", path)
        assert page.status_code == 200
        assert "cdn" not in page.text.lower()
        assert "https://" not in page.text and "http://" not in page.text, page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        served = ask(app, "GET", f"/docs-assets/{asset}")
        assert served.status_code == 200 and len(served.content) > 10_000, asset


def test_summary_for_the_start_page(text_store: Any) -> None:
    store, app = text_store
    summary = ask(app, "GET", "/summary").json()
    assert summary["pages"] == len(TEXTS) and summary["documents"] == 3
    assert summary["encoder"] == store.stats().encoder and summary["reads"] == "text"
    assert {m for m, v in summary["modes"].items() if v["available"]} == {
        "maxsim",
        "lexical",
        "hybrid",
    }
    assert summary["version"] == version("latestore")
    assert 1 <= len(summary["examples"]) <= 4
    for example in summary["examples"]:  # each example finds the page it came from
        hits = post(app, {"query": example, "k": 1, "mode": "lexical"}).json()["hits"]
        assert hits, example


def test_cors_preflight_without_key_request_with_key(text_store: Any, tmp_path: Path) -> None:
    store, _ = text_store
    key = "sesame-1234"
    app = create_app(
        store, ServeSettings(store="x", api_key=key, cors_origins=("http://app.example",))
    )
    preflight = {
        "Origin": "http://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-api-key",
    }
    allowed = ask(app, "OPTIONS", "/search", headers=preflight)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["access-control-allow-origin"] == "http://app.example"
    assert "x-api-key" in allowed.headers["access-control-allow-headers"].lower()
    other = ask(app, "OPTIONS", "/search", headers={**preflight, "Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    body = {"query": QUERY, "k": 1}
    origin = {"Origin": "http://app.example"}
    keyless = ask(app, "POST", "/search", json=body, headers=origin)
    assert keyless.status_code == 401
    # The browser may read the refusal: it carries the CORS header.
    assert keyless.headers["access-control-allow-origin"] == "http://app.example"
    keyed = ask(app, "POST", "/search", json=body, headers={**origin, "X-API-Key": key})
    assert keyed.status_code == 200 and keyed.json()["hits"]
    assert keyed.headers["access-control-allow-origin"] == "http://app.example"


def test_a_store_of_given_vectors_searches_by_words(tmp_path: Path) -> None:
    from latestore import PrecomputedVectors

    rng = np.random.default_rng(3)
    with Store.open(tmp_path / "v.db", PrecomputedVectors(8)) as store:
        store.add_pages(
            [
                Page(text=text, vectors=rng.standard_normal((4, 8)).astype(np.float32))
                for text, _ in TEXTS
            ]
        )
        app = create_app(store, ServeSettings(store=str(tmp_path / "v.db")))
        summary = ask(app, "GET", "/summary").json()
        assert summary["reads"] == "vectors"
        assert not summary["modes"]["maxsim"]["available"] and summary["modes"]["maxsim"]["note"]
        assert summary["modes"]["lexical"]["available"]
        # The page always asks for explanations: words alone still answer, unexplained.
        words = post(app, {"query": "jet engines", "mode": "lexical", "explain": True})
        assert words.status_code == 200, words.text
        hit = words.json()["hits"][0]
        assert "Jet engines" in hit["text"] and hit["explanation"] is None
        refused = post(app, {"query": "jet engines", "mode": "maxsim", "explain": True})
        assert refused.status_code == 422 and refused.json()["error"] == "EncoderError"
