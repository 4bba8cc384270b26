"""The encoder registry (names, directories, unknown input) and token pooling."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latestore import Page, Store
from latestore.encoders import registry
from latestore.encoders.base import PageContent, PrecomputedVectors, TokenVectors, l2_normalise
from latestore.encoders.pooling import PooledEncoder, pool_tokens
from latestore.encoders.registry import load_encoder, register, registered_names
from latestore.errors import EncoderError
from tests.encoders.checkpoints import write_hf_colbert


class _FixedEncoder(PrecomputedVectors):
    """A model-free encoder whose page vectors are given up front (pooling tests)."""

    def __init__(self, pages: list[TokenVectors]) -> None:
        super().__init__(dim=pages[0].shape[1], name="fixed")
        self._pages = pages

    def encode_queries(self, queries: Sequence[str]) -> list[TokenVectors]:
        return [self._pages[0][:3] for _ in queries]

    def encode_pages(self, pages: Sequence[PageContent]) -> list[TokenVectors]:
        return self._pages[: len(pages)]


def test_minilm_is_registered() -> None:
    assert "minilm" in registered_names()
    assert registry.families()[0].name == "minilm"


def test_register_named_factory_sets_spec() -> None:
    register("fixed-test", lambda **options: PrecomputedVectors(dim=int(options.get("dim", 4))))
    encoder = load_encoder("fixed-test", dim=8)
    assert encoder.dim == 8
    assert getattr(encoder, "spec") == "fixed-test"  # noqa: B009 - not in the protocol
    with pytest.raises(ValueError):
        register("a/b", PrecomputedVectors)


def test_unknown_name_or_path() -> None:
    with pytest.raises(EncoderError, match="neither a registered name"):
        load_encoder("no-such-model-name")


def test_unknown_directory_names_what_it_found(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"})
    )
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(EncoderError) as caught:
        load_encoder(tmp_path)
    message = str(caught.value)
    assert "GPT2LMHeadModel" in message and "gpt2" in message and "model.safetensors" in message


def test_directory_pooling_option(tmp_path: Path) -> None:
    folder = write_hf_colbert(tmp_path / "colbert")
    plain: Any = load_encoder(folder)
    pooled: Any = load_encoder(str(folder), pool_factor=2)
    assert isinstance(load_encoder(str(folder), pool_factor=3), PooledEncoder)
    assert pooled.spec == plain.spec == str(folder.resolve())
    assert pooled.fingerprint != plain.fingerprint
    text = "late interaction search is what the vector store is " * 2
    full = plain.encode_pages([PageContent(text=text)])[0]
    reduced = pooled.encode_pages([PageContent(text=text)])[0]
    assert reduced.shape == (full.shape[0] // 2, full.shape[1])
    np.testing.assert_array_equal(
        pooled.encode_queries(["hello"])[0], plain.encode_queries(["hello"])[0]
    )
    assert pooled.dtype == "float32"  # other attributes come from the wrapped model


def test_pool_tokens_reduces_by_factor_with_unit_norms(rng: np.random.Generator) -> None:
    vectors = l2_normalise(rng.normal(size=(50, 16)))
    for factor in (2, 3, 4):
        pooled = pool_tokens(vectors, factor)
        assert pooled.shape == (50 // factor, 16)
        assert pooled.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(pool_tokens(vectors, 3), pool_tokens(vectors, 3))
    np.testing.assert_array_equal(pool_tokens(vectors, 1), vectors)
    assert pool_tokens(vectors[:1], 2).shape == (1, 16)
    assert pool_tokens(vectors[:3], 4).shape == (1, 16)
    with pytest.raises(EncoderError):
        pool_tokens(vectors, 0)


def test_pool_tokens_merges_near_duplicates(rng: np.random.Generator) -> None:
    # Five well-separated directions, each repeated with small noise: pooling by 4 must
    # give back (close to) the five directions.
    centres = l2_normalise(rng.normal(size=(5, 32)))
    tokens = l2_normalise(np.repeat(centres, 4, axis=0) + rng.normal(scale=0.01, size=(20, 32)))
    pooled = pool_tokens(tokens, 4)
    assert pooled.shape == (5, 32)
    np.testing.assert_allclose(np.abs(pooled @ centres.T).max(axis=1), 1.0, atol=1e-3)


def test_pooled_encoder_fingerprint(rng: np.random.Generator) -> None:
    inner = _FixedEncoder([l2_normalise(rng.normal(size=(30, 8)))])
    two, three = PooledEncoder(inner, 2), PooledEncoder(inner, 3)
    assert len({inner.fingerprint, two.fingerprint, three.fingerprint}) == 3
    assert two.fingerprint == PooledEncoder(inner, 2).fingerprint
    assert two.encode_pages([PageContent(text="x")])[0].shape == (15, 8)
    assert two.dim == 8 and two.name == "fixed+pool2"
    with pytest.raises(EncoderError):
        PooledEncoder(inner, 0)


def test_a_store_opened_without_encoder_loads_it_only_when_text_needs_it(
    tmp_path: Path,
) -> None:
    model = write_hf_colbert(tmp_path / "colbert", dim=16)
    db = tmp_path / "s.db"
    with Store.open(db, load_encoder(model)) as store:
        ids = store.add_pages([Page(text="propeller blades"), Page(text="wing flutter")])
        query = store.encoder.encode_queries(["propeller"])[0]
        want = store.search(query, k=2)
    # the checkpoint moved away: listing, deleting and vector search still work
    shutil.rmtree(model)
    with Store.open(db) as store:
        assert store.stats().encoder_fingerprint == store.encoder_fingerprint
        assert store.search(query, k=2) == want
        assert store.page_ids() == ids
        with pytest.raises(EncoderError, match="colbert"):
            store.search("propeller", k=2)
        assert store.delete([ids[1]]) == 1
    with Store.open(db, load_encoder(write_hf_colbert(tmp_path / "colbert", dim=16))) as store:
        assert [h.page_id for h in store.search("propeller", k=2)] == [ids[0]]
