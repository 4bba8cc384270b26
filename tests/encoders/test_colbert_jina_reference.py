"""latestore's Jina backbone against transformers' port of Jina's remote code.

The checkpoints come from :mod:`tests.oracle.jina_reference`: transformers'
``JinaEmbeddingsV3Model`` builds a tiny random backbone and saves it under the remote
code's own tensor names, in the jina-colbert-v2 folder layout. latestore loads that
folder with its own ``JinaXLMRobertaModel``; the reference reruns the port on exactly
the token ids, attention masks and kept positions latestore produced, so what is
compared here is the backbone, the projection and the normalisation. The tokenisation
contract is compared with PyLate in ``tests/oracle/test_jina_oracle.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from latestore.encoders.base import PageContent
from latestore.encoders.registry import load_encoder
from latestore.errors import EncoderError
from tests.oracle.jina_reference import (
    reference_available,
    reference_vectors,
    write_reference_jina_colbert,
    write_reference_jina_pylate,
    xlmr_tokenizer,
)
from tests.oracle.record import TOLERANCE
from tests.oracle.texts import DOCUMENTS, QUERIES

pytestmark = pytest.mark.skipif(
    not reference_available(), reason="this transformers has no JinaEmbeddingsV3Model"
)


def _linear() -> torch.Tensor:
    generator = torch.Generator().manual_seed(7)
    return torch.randn(16, 32, generator=generator) * 0.1


def _checkpoint(tmp_path: Path, config_style: str, layout: str = "jina-colbert-v2") -> Path:
    xlmr_tokenizer(tmp_path / "tokenizer")
    write = (
        write_reference_jina_colbert if layout == "jina-colbert-v2" else write_reference_jina_pylate
    )
    return write(
        tmp_path / "jina",
        tokenizer_dir=tmp_path / "tokenizer",
        linear=_linear(),
        query_length=12,
        document_length=40,
        config_style=config_style,
    )


@pytest.mark.parametrize(
    ("layout", "family"), [("jina-colbert-v2", "colbert-jina"), ("pylate", "pylate")]
)
@pytest.mark.parametrize("config_style", ["remote-code", "transformers"])
def test_backbone_equals_transformers_port(
    tmp_path: Path, config_style: str, layout: str, family: str
) -> None:
    """Both layouts a Jina ColBERT ships in: colbert-ai's (the published checkpoint) and
    PyLate's (what ``ColBERT.save`` writes after loading or fine-tuning it)."""
    folder = _checkpoint(tmp_path, config_style, layout)
    encoder = load_encoder(folder, device="cpu", windows=False)  # one window per page, as theirs
    assert encoder.family == family
    assert encoder.prompts.attend_to_expansion and encoder.prompts.query_length == 12
    for texts, is_query in ((QUERIES, True), (DOCUMENTS, False)):
        ids, mask, keep = encoder._tokenize(list(texts), is_query=is_query)
        theirs = reference_vectors(folder, _linear(), ids.numpy(), mask.numpy(), keep.numpy())
        ours = (
            encoder.encode_queries(texts)
            if is_query
            else encoder.encode_pages([PageContent(text=t) for t in texts])
        )
        assert [o.shape for o in ours] == [t.shape for t in theirs]
        worst = max(float(np.abs(o - t).max()) for o, t in zip(ours, theirs, strict=True))
        assert worst <= TOLERANCE, (config_style, is_query, worst)


def test_rotary_base_is_read_from_either_config(tmp_path: Path) -> None:
    """A wrong base changes every vector: 10000 (the remote code's default) is not 20000."""
    folder = _checkpoint(tmp_path, "transformers")
    encoder = load_encoder(folder, device="cpu")
    config = json.loads((folder / "config.json").read_text())
    config["rope_parameters"]["rope_theta"] = 10000.0
    (folder / "config.json").write_text(json.dumps(config))
    other = load_encoder(folder, device="cpu")
    ours, theirs = encoder.encode_queries(QUERIES[:1])[0], other.encode_queries(QUERIES[:1])[0]
    assert float(np.abs(ours - theirs).max()) > 1e-3


def test_skiplist_drops_only_the_bare_symbol(tmp_path: Path) -> None:
    """PyLate skips the token spelled "(", not sentencepiece's word-start "▁("."""
    encoder = load_encoder(_checkpoint(tmp_path, "remote-code"), device="cpu")
    tokenizer = encoder.tokenizer
    text = "the cat (dog) sat."
    ids, _, keep = encoder._tokenize([text], is_query=False)
    pieces = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    kept = {p for p, k in zip(pieces, keep[0].tolist(), strict=True) if k}
    dropped = {p for p, k in zip(pieces, keep[0].tolist(), strict=True) if not k}
    assert "▁(" in pieces and "▁(" in kept
    assert {")", "."} <= dropped
    vectors = encoder.encode_pages([PageContent(text=text)])[0]
    assert vectors.shape[0] == int(keep.sum())


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"rotary_emb_interleaved": True}, "interleaved"),
        ({"rotary_emb_dim": 8}, "partial rotary"),
        ({"rotary_emb_scale_base": 512}, "xPos"),
        (
            {"rope_parameters": {"rope_type": "linear", "rope_theta": 2e4, "factor": 2.0}},
            "rope_type .linear. is not supported",
        ),
    ],
)
def test_rotary_variants_the_backbone_does_not_compute_are_refused(
    tmp_path: Path, setting: dict[str, object], message: str
) -> None:
    folder = _checkpoint(tmp_path, "remote-code")
    config = json.loads((folder / "config.json").read_text()) | setting
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(EncoderError, match=message):
        load_encoder(folder, device="cpu")


def test_rotary_dim_equal_to_the_head_size_is_the_default(tmp_path: Path) -> None:
    folder = _checkpoint(tmp_path, "remote-code")
    # The remote code defaults it to hidden_size / heads, a float.
    config = json.loads((folder / "config.json").read_text()) | {"rotary_emb_dim": 16.0}
    (folder / "config.json").write_text(json.dumps(config))
    assert load_encoder(folder, device="cpu").dim == 16


def test_skiplist_symbol_missing_from_the_vocabulary_skips_unknown_tokens(
    tmp_path: Path,
) -> None:
    """PyLate converts each skiplist word to an id: a word the vocabulary lacks becomes the
    unknown token's id, so unknown tokens are dropped from documents, as there."""
    folder = _checkpoint(tmp_path, "remote-code")
    text = "the cat Zebra sat"
    plain = load_encoder(folder, device="cpu", skiplist=["("])
    missing = load_encoder(folder, device="cpu", skiplist=["(", "§"])
    ids, _, keep = missing._tokenize([text], is_query=False)
    unknown = ids[0] == missing.tokenizer.unk_token_id
    assert bool(unknown.any()) and not bool(keep[0][unknown].any())
    dropped = int(unknown.sum())
    counts = [e.encode_pages([PageContent(text=text)])[0].shape[0] for e in (plain, missing)]
    assert counts[0] - counts[1] == dropped
