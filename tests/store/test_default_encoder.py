"""End to end with the real offline MiniLM encoder (the default a user gets)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from latestore import Page, Store
from latestore.encoders.text.minilm import MiniLMEncoder
from latestore.encoders.windows import WindowSettings
from latestore.errors import EncoderError, InvalidInputError

CORPUS = Path(__file__).resolve().parents[2] / "examples" / "data" / "demo_corpus.jsonl"


def demo_pages() -> list[Page]:
    rows = [json.loads(line) for line in CORPUS.read_text().splitlines()]
    return [
        Page(
            text=r["text"],
            external_id=r["id"],
            document_id=r["doc"],
            page_number=r["page"],
            metadata={"topic": r["topic"], "year": r["year"]},
        )
        for r in rows
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, minilm: MiniLMEncoder) -> Path:
    path = tmp_path_factory.mktemp("minilm") / "demo.db"
    with Store.open(path, minilm) as store:
        store.add_pages(demo_pages())
    return path


def test_encoder_vectors_are_unit_token_vectors(minilm: MiniLMEncoder) -> None:
    from latestore.encoders import PageContent

    pages = minilm.encode_pages(
        [PageContent(text="MaxSim sums maxima."), PageContent(text="x " * 400)]
    )
    assert pages[0].shape[1] == 384 and 4 < pages[0].shape[0] < 20
    # Windows by default: the 400 words are all read, each with one vector (+ specials).
    assert pages[1].shape[0] > minilm.page_max_tokens
    truncating = minilm.with_windowing(WindowSettings(enabled=False))
    cut = truncating.encode_pages([PageContent(text="x " * 400)])[0]
    assert cut.shape[0] == minilm.page_max_tokens  # windows off: truncated to the model length
    np.testing.assert_allclose(np.linalg.norm(pages[0], axis=1), 1.0, rtol=1e-5)
    same_call = minilm.encode_pages(
        [PageContent(text="MaxSim sums maxima."), PageContent(text="x " * 400)]
    )
    np.testing.assert_array_equal(same_call[0], pages[0])  # deterministic
    alone = minilm.encode_pages([PageContent(text="MaxSim sums maxima.")])
    np.testing.assert_allclose(alone[0], pages[0], atol=1e-5)  # padding changes only rounding
    with pytest.raises(EncoderError):
        minilm.encode_pages([PageContent(text=None)])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("how do late interaction retrievers score documents?", "cs-2"),
        ("why does bread dough rise?", "cook-2"),
        ("telescope that sees infrared light", "astro-4"),
        ("deepest place in the ocean", "geo-1"),
    ],
)
def test_search_finds_the_right_page(
    built: Path, minilm: MiniLMEncoder, query: str, expected: str
) -> None:
    with Store.open(built, minilm) as store:
        hits = store.search(query, k=3)
        assert hits[0].external_id == expected
        assert hits[0].text and hits[0].metadata["topic"]


def test_default_encoder_is_recorded_and_reused(built: Path) -> None:
    with Store.open(built) as store:  # no encoder given: the recorded default is used
        assert store.encoder.name == "minilm"
        assert store.count() == 28


def test_text_filter_delete_reopen(built: Path, minilm: MiniLMEncoder, tmp_path: Path) -> None:
    path = tmp_path / "copy.db"
    with Store.open(path, minilm) as store:
        store.add_pages(demo_pages())
        hits = store.search("a storm on a planet", k=3, filter={"topic": "astronomy"})
        assert len(hits) == 3 and all(h.metadata["topic"] == "astronomy" for h in hits)
        before = [(h.page_id, h.score) for h in store.search("music instruments", k=5)]
        top = store.search("why does bread dough rise?", k=1)[0]
        store.delete([top.page_id])
        assert top.page_id not in [
            h.page_id for h in store.search("why does bread dough rise?", k=5)
        ]
        with pytest.raises(InvalidInputError):
            store.search("   ", k=3)
    with Store.open(path, minilm) as store:
        assert [(h.page_id, h.score) for h in store.search("music instruments", k=5)] == before
        assert top.page_id not in [
            h.page_id for h in store.search("why does bread dough rise?", k=5)
        ]


def test_bfloat16_encoding_is_the_same_model_to_a_store(
    minilm: MiniLMEncoder, tmp_path: Path
) -> None:
    fast = MiniLMEncoder(dtype="bfloat16")
    assert fast.fingerprint == minilm.fingerprint
    texts = [p.text or "" for p in demo_pages()[:6]]
    for full, half in zip(minilm.encode_queries(texts), fast.encode_queries(texts), strict=True):
        assert full.shape == half.shape
        assert float((full * half).sum(axis=1).min()) > 0.99  # same tokens, same directions
    with pytest.raises(EncoderError, match="int8"):
        MiniLMEncoder(dtype="int8")

    path = tmp_path / "bf16.db"
    with Store.open(path, encoder_options={"dtype": "bfloat16"}) as store:
        store.add_pages(demo_pages())
        assert store.encoder.dtype == torch.bfloat16
        built_with_bf16 = [h.external_id for h in store.search("how do propellers work?", k=3)]
    with Store.open(path) as store:  # reopened by the default float32 encoder
        assert store.encoder.dtype == torch.float32
        assert [h.external_id for h in store.search("how do propellers work?", k=3)] == (
            built_with_bf16
        )
    with Store.open(path, encoder_options={"dtype": "bfloat16"}) as store:
        assert store.encoder.dtype == torch.bfloat16  # options reach the recorded encoder
    with pytest.raises(InvalidInputError, match="encoder_options"):
        Store.open(path, minilm, encoder_options={"dtype": "bfloat16"})
