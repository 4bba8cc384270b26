"""The transformers-free BERT and tokenizer give what transformers gives, on MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from latestore.encoders.text.bert_lite import LiteBert, LiteTokenizer
from latestore.encoders.text.minilm import bundled_model_dir

TEXTS = [
    "wing slipstream",
    "What is the effect of a propeller slipstream on the spanwise lift distribution?",
    "Ünïcödé façade — naïve café; 北京 and emoji 🚀 with    odd\tspacing\nand lines",
    "x",
    "",
    "ColBERT's MaxSim: sum over query tokens of max similarity; " * 30,
]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return bundled_model_dir()


def corpus_texts(shared: Path) -> list[str]:
    path = shared / "scifact" / "corpus.jsonl"
    if not path.exists():
        return []
    with path.open() as handle:
        return [json.loads(next(handle))["text"] for _ in range(40)]


def test_token_ids_match_transformers(model_dir: Path) -> None:
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(model_dir))
    lite = LiteTokenizer(model_dir)
    texts = TEXTS + corpus_texts(Path(__file__).resolve().parents[3] / "shared" / "data")
    for specials in (True, False):
        want = reference(texts, add_special_tokens=specials, truncation=False, verbose=False)
        got = lite(texts, add_special_tokens=specials, truncation=False, verbose=False)
        assert got["input_ids"] == want["input_ids"]
    for length in (5, 64, 256):
        want_pt = reference(texts, padding=True, truncation=True, max_length=length,
                            return_tensors="pt")  # fmt: skip
        got_pt = lite(texts, padding=True, truncation=True, max_length=length, return_tensors="pt")
        assert torch.equal(got_pt["input_ids"], want_pt["input_ids"])
        assert torch.equal(got_pt["attention_mask"], want_pt["attention_mask"])
    assert lite("hello")["input_ids"] == reference("hello")["input_ids"]
    for text in texts:
        want_offsets = reference(text, add_special_tokens=False, return_offsets_mapping=True)
        got_offsets = lite(text, add_special_tokens=False, return_offsets_mapping=True)
        assert got_offsets["offset_mapping"] == [tuple(o) for o in want_offsets["offset_mapping"]]
        ids = got_offsets["input_ids"]
        assert lite.convert_ids_to_tokens(ids) == reference.convert_ids_to_tokens(ids)
    for role in ("pad", "cls", "sep", "mask"):
        assert getattr(lite, f"{role}_token_id") == getattr(reference, f"{role}_token_id")


def test_hidden_states_match_transformers(model_dir: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    reference = AutoModel.from_pretrained(str(model_dir)).eval()
    lite = LiteBert.load(model_dir)
    batch = AutoTokenizer.from_pretrained(str(model_dir))(
        TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt"
    )
    with torch.inference_mode():
        want = reference(**batch).last_hidden_state
        got = lite(**batch).last_hidden_state
    mask = batch["attention_mask"].bool()
    assert got.shape == want.shape
    # Real tokens only: padded positions are never read.
    torch.testing.assert_close(got[mask], want[mask], atol=2e-5, rtol=1e-4)


def test_minilm_fingerprint_is_unchanged(model_dir: Path) -> None:
    """Stores built when MiniLM ran through transformers open with it as they were.
    (Those stores read pages truncated; windows, now the default, add to the print.)"""
    from latestore.encoders.text.minilm import MiniLMEncoder

    assert MiniLMEncoder(windows=False).fingerprint == "e9bbf7fc096c6ec528c78161b5d23462"
    assert MiniLMEncoder().fingerprint != "e9bbf7fc096c6ec528c78161b5d23462"
