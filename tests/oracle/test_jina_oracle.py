"""jina-colbert-v2 end to end: PyLate's tokenisation, transformers' port of Jina's backbone.

No single installable reference runs jina-colbert-v2: its backbone is hub remote code,
and PyLate 1.6.0 pins a transformers (<= 5.3) without the port of it. The chain is
therefore built from two references, each in its own virtualenv:

* ``make oracle`` runs PyLate over an XLM-RoBERTa ColBERT with jina-colbert-v2's PyLate
  settings (``[QueryMarker]`` / ``[DocumentMarker]``, attended query expansion, the
  punctuation skiplist) and saves the input ids, attention masks and kept positions it
  fed the model (``tokens.npz``) beside its tokenizer and ``Dense`` weights;
* transformers' ``JinaEmbeddingsV3Model`` (main virtualenv) builds the backbone, saves it
  in the remote code's tensor names, and computes the reference vectors on exactly
  PyLate's ids and masks, followed by PyLate's head (bias-free linear, L2 norm, kept rows).

latestore loads the resulting jina-colbert-v2 folder by itself, tokenises the oracle
texts itself and must reproduce both: the same token ids and kept positions as PyLate,
and the same vectors as the port.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from latestore.encoders.base import PageContent
from latestore.encoders.registry import load_encoder
from tests.oracle.jina_reference import (
    reference_available,
    reference_name,
    reference_vectors,
    write_reference_jina_colbert,
)
from tests.oracle.record import TOLERANCE, compare
from tests.oracle.texts import DOCUMENTS, QUERIES

ORACLE_DIR = Path(
    os.environ.get(
        "LATESTORE_PYLATE_ORACLE_DIR", Path(__file__).resolve().parents[2] / "build" / "pylate"
    )
)
CASE = "colbert-xlmr-jina-settings-pylate"
FAMILY = "colbert (Jina, jina-colbert-v2)"
NOTE = (
    "token ids, masks and kept rows from PyLate (its transformers has no Jina backbone); "
    "vectors from transformers' port of Jina's remote code, which itself is "
    "source-reviewed, not run"
)


def _missing(message: str) -> NoReturn:
    """Skip, unless the oracle is required (``.ci/run``), where a missing part fails."""
    if os.environ.get("LATESTORE_REQUIRE_PYLATE_ORACLE") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _pylate_case() -> tuple[Path, dict[str, object]]:
    folder = ORACLE_DIR / CASE
    if not reference_available():
        _missing("this transformers has no JinaEmbeddingsV3Model (the port came after 5.3)")
    if not (folder / "tokens.npz").is_file():
        _missing(f"no PyLate tokens at {folder}: run `make oracle`")
    return folder, json.loads((folder / "case.json").read_text())


def _attended_ids(ids: np.ndarray, mask: np.ndarray) -> list[list[int]]:
    # PyLate pads with the mask token, latestore with the pad token; neither is attended.
    return [row[m.astype(bool)].tolist() for row, m in zip(ids, mask, strict=True)]


def test_jina_colbert_equals_pylate_tokens_and_transformers_backbone(tmp_path: Path) -> None:
    case, meta = _pylate_case()
    settings = json.loads((case / "model" / "config_sentence_transformers.json").read_text())
    linear = load_file(case / "model" / "1_Dense" / "model.safetensors")["linear.weight"]
    folder = write_reference_jina_colbert(
        tmp_path / "jina-colbert-v2",
        tokenizer_dir=case / "model",
        linear=linear,
        query_length=int(settings["query_length"]),
        document_length=int(settings["document_length"]),
    )
    encoder = load_encoder(folder, device="cpu", windows=False)  # PyLate truncates: one window
    assert encoder.family == "colbert-jina"
    with np.load(case / "tokens.npz") as saved:
        tokens = {name: saved[name] for name in saved.files}
    theirs = []
    for side, texts in (("q", QUERIES), ("d", DOCUMENTS)):
        ids, mask, keep = encoder._tokenize(list(texts), is_query=side == "q")
        assert _attended_ids(ids.numpy(), mask.numpy()) == _attended_ids(
            tokens[f"{side}_ids"], tokens[f"{side}_mask"]
        ), side
        assert np.array_equal(mask.numpy(), tokens[f"{side}_mask"]), side
        assert np.array_equal(keep.numpy(), tokens[f"{side}_keep"]), side
        batch = (tokens[f"{side}_ids"], tokens[f"{side}_mask"], tokens[f"{side}_keep"])
        theirs.append(reference_vectors(folder, linear, *batch))
    ours = (
        encoder.encode_queries(QUERIES),
        encoder.encode_pages([PageContent(text=text) for text in DOCUMENTS]),
    )
    result = compare(
        FAMILY, f"{meta['reference']} tokens + {reference_name()}", ours, (theirs[0], theirs[1])
    )
    dataclasses.replace(result, note=NOTE).write()
    assert result.token_counts_equal
    assert result.max_abs_diff <= TOLERANCE, result
    # The rotary base matters: the same folder read with the remote code's default (10000)
    # must not pass, or this comparison could not tell a wrong base from the right one.
    config = json.loads((folder / "config.json").read_text())
    config.pop("rotary_emb_base")
    (folder / "config.json").write_text(json.dumps(config))
    misread = load_encoder(folder, device="cpu").encode_queries(QUERIES[:1])[0]
    assert float(np.abs(misread - ours[0][0]).max()) > 1e-3
    assert torch.equal(linear, load_file(folder / "model.safetensors")["linear.weight"])
