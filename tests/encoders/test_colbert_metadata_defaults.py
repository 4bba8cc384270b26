"""HF_ColBERT settings absent from ``artifact.metadata`` take PyLate's defaults.

PyLate (the reference for this layout) reads ``query_maxlen`` and ``doc_maxlen`` from
the metadata and otherwise uses 32 and 180, colbert-ai's own ColBERTConfig defaults.
latestore used 220 for BERT checkpoints and 8192 for Jina's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from latestore.encoders.registry import load_encoder
from tests.encoders.checkpoints import (
    TINY,
    bert_tokenizer,
    save_tensors,
    write_hf_colbert,
    write_jina_colbert,
)


def _bert_colbert_with_room(folder: Path) -> Path:
    """colbertv2.0's layout with 256 positions, so a 180-token default is not clipped."""
    from transformers import BertConfig, BertModel

    write_hf_colbert(folder)
    tokenizer = bert_tokenizer(folder)
    config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=256, **TINY)
    config.architectures = ["HF_ColBERT"]
    tensors = {f"bert.{k}": v for k, v in BertModel(config).state_dict().items()}
    tensors["linear.weight"] = torch.zeros(16, config.hidden_size)
    save_tensors(folder / "model.safetensors", tensors)
    config.save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize("write", [_bert_colbert_with_room, write_jina_colbert])
def test_lengths_missing_from_the_metadata_are_pylates(
    tmp_path: Path, write: Callable[..., Path]
) -> None:
    folder = write(tmp_path / "model")
    metadata = json.loads((folder / "artifact.metadata").read_text())
    for key in ("query_maxlen", "doc_maxlen"):
        del metadata[key]
    (folder / "artifact.metadata").write_text(json.dumps(metadata))
    prompts = load_encoder(folder, device="cpu").prompts
    assert (prompts.query_length, prompts.document_length) == (32, 180)


@pytest.mark.parametrize("write", [write_hf_colbert, write_jina_colbert])
def test_lengths_in_the_metadata_win(tmp_path: Path, write: Callable[..., Path]) -> None:
    folder = write(tmp_path / "model")
    metadata = json.loads((folder / "artifact.metadata").read_text())
    prompts = load_encoder(folder, device="cpu").prompts
    assert (prompts.query_length, prompts.document_length) == (
        metadata["query_maxlen"],
        metadata["doc_maxlen"],
    )
