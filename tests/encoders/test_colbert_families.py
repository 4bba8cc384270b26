"""Every ColBERT family, from a tiny checkpoint in its real layout, through the registry."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from latestore.encoders.base import Encoder, PageContent
from latestore.encoders.registry import load_encoder
from latestore.errors import EncoderError
from tests.encoders.checkpoints import (
    drop_tensor,
    load_tensors,
    rename_tensor,
    save_tensors,
    write_bge_m3,
    write_hf_colbert,
    write_jina_colbert,
    write_pylate_modernbert,
)

WRITERS: dict[str, Callable[[Path], Path]] = {
    "colbert": write_hf_colbert,
    "colbert-jina": write_jina_colbert,
    "pylate": write_pylate_modernbert,
    "bge-m3": write_bge_m3,
}
# family -> (query length with expansion or None, query marker, document marker)
EXPECTED: dict[str, tuple[int | None, str | None, str | None]] = {
    "colbert": (12, "[unused0]", "[unused1]"),
    "colbert-jina": (10, "[QueryMarker]", "[DocumentMarker]"),
    "pylate": (12, "[Q] ", "[D] "),
    "bge-m3": (None, None, None),
}
PAGE = "the cat sat on the mat, hello world!"
LONG_PAGE = "late interaction search is what the vector store is; " * 3


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {family: write(root / family) for family, write in WRITERS.items()}


@pytest.fixture(scope="module")
def encoders(checkpoints: dict[str, Path]) -> dict[str, Any]:
    # CPU in fp32 so that exactness checks hold on GPU machines too (see test_cuda_*).
    return {family: load_encoder(path, device="cpu") for family, path in checkpoints.items()}


def _copy(checkpoints: dict[str, Path], family: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(checkpoints[family], tmp_path / family))


@pytest.mark.parametrize("family", list(WRITERS))
class TestFamily:
    def test_resolves_family_and_protocol(self, encoders: dict[str, Any], family: str) -> None:
        assert isinstance(encoders[family], Encoder)
        encoder = encoders[family]
        assert encoder.family == family
        assert encoder.dim == (32 if family == "bge-m3" else 16)
        assert Path(encoder.spec).is_dir()
        assert encoder.device == "cpu" and encoder.dtype == "float32"

    def test_shapes_and_unit_norms(self, encoders: dict[str, Any], family: str) -> None:
        encoder = encoders[family]
        queries = encoder.encode_queries(["what is late interaction", "cat"])
        pages = encoder.encode_pages([PageContent(text=PAGE), PageContent(text=LONG_PAGE)])
        query_length = EXPECTED[family][0]
        for vectors in queries + pages:
            assert vectors.dtype == np.float32 and vectors.ndim == 2
            assert vectors.shape[1] == encoder.dim
            np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        if query_length is not None:
            assert [q.shape[0] for q in queries] == [query_length, query_length]
        else:
            assert queries[0].shape[0] > queries[1].shape[0]
        assert pages[1].shape[0] > pages[0].shape[0]

    def test_deterministic_and_batch_independent(
        self, encoders: dict[str, Any], family: str
    ) -> None:
        encoder = encoders[family]
        alone = encoder.encode_pages([PageContent(text=PAGE)])[0]
        again = encoder.encode_pages([PageContent(text=PAGE)])[0]
        np.testing.assert_array_equal(alone, again)
        # Padding next to a longer page must not change the vectors.
        batched = encoder.encode_pages([PageContent(text=LONG_PAGE), PageContent(text=PAGE)])[1]
        np.testing.assert_allclose(batched, alone, atol=1e-5)
        first = encoder.encode_queries(["hello world"])[0]
        np.testing.assert_array_equal(first, encoder.encode_queries(["hello world"])[0])

    def test_markers_and_query_expansion(self, encoders: dict[str, Any], family: str) -> None:
        encoder = encoders[family]
        query_length, query_marker, document_marker = EXPECTED[family]
        tokenizer = encoder.tokenizer
        ids, attention, keep = encoder._tokenize(["cat"], is_query=True)
        doc_ids, _, _ = encoder._tokenize(["cat"], is_query=False)
        if query_marker is None or query_length is None:
            assert tokenizer.convert_ids_to_tokens(int(ids[0, 1])) != "[QueryMarker]"
            assert ids.shape[1] == attention.sum()
            assert not keep[0, 0]  # bge-m3 keeps no vector for <s>
            return
        assert int(ids[0, 1]) == tokenizer.convert_tokens_to_ids(query_marker)
        assert int(doc_ids[0, 1]) == tokenizer.convert_tokens_to_ids(document_marker)
        assert ids.shape[1] == query_length and bool(keep.all())
        expansion = ids[0] == tokenizer.mask_token_id
        # <cls> [marker] cat <sep> then mask tokens up to the fixed length.
        assert int(expansion.sum()) == query_length - 4
        attended = bool(attention[0][expansion].all())
        assert attended == encoder.prompts.attend_to_expansion
        assert attended == (family == "colbert-jina")

    def test_document_skiplist(self, encoders: dict[str, Any], family: str) -> None:
        encoder = encoders[family]
        plain = encoder.encode_pages([PageContent(text="hello world the cat")])[0]
        punctuated = encoder.encode_pages([PageContent(text="hello, world! the cat?")])[0]
        ids, _, keep = encoder._tokenize(["hello, world! the cat?"], is_query=False)
        punctuation = {encoder.tokenizer.convert_tokens_to_ids(p) for p in ",!?"}
        kept = {int(i) for i in ids[0][keep[0]]}
        if family == "bge-m3":  # bge-m3 defines no skiplist
            assert punctuation <= kept
            assert punctuated.shape[0] == plain.shape[0] + 3
        else:
            assert not punctuation & kept
            assert punctuated.shape[0] == plain.shape[0]

    def test_fingerprint(
        self, encoders: dict[str, Any], checkpoints: dict[str, Path], family: str
    ) -> None:
        encoder = encoders[family]
        assert load_encoder(checkpoints[family], device="cpu").fingerprint == encoder.fingerprint
        shorter = load_encoder(checkpoints[family], device="cpu", document_length=20)
        assert shorter.fingerprint != encoder.fingerprint
        others = {e.fingerprint for f, e in encoders.items() if f != family}
        assert encoder.fingerprint not in others

    def test_extra_weight_fails(
        self, checkpoints: dict[str, Path], family: str, tmp_path: Path
    ) -> None:
        folder = _copy(checkpoints, family, tmp_path)
        weights = next(
            p for p in sorted(folder.iterdir()) if p.name.startswith(("model.", "pytorch_model"))
        )
        tensors = load_tensors(weights)
        tensors["stray.weight"] = torch.zeros(2)
        save_tensors(weights, tensors)
        with pytest.raises(EncoderError, match=r"unused checkpoint weights: .*stray\.weight"):
            load_encoder(folder)


def _backbone_file(folder: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    raise AssertionError(folder)


# family -> (file holding the projection, its name there, one backbone weight name)
MISNAMES: dict[str, tuple[str, str, str]] = {
    "colbert": (
        "model.safetensors",
        "linear.weight",
        "bert.encoder.layer.0.attention.self.query.weight",
    ),
    "colbert-jina": (
        "model.safetensors",
        "linear.weight",
        "roberta.encoder.layers.1.mixer.Wqkv.weight",
    ),
    "pylate": ("1_Dense/model.safetensors", "linear.weight", "layers.0.attn.Wqkv.weight"),
    "bge-m3": ("colbert_linear.pt", "weight", "encoder.layer.1.output.dense.weight"),
}


@pytest.mark.parametrize("family", list(MISNAMES))
def test_misnamed_projection_fails(
    checkpoints: dict[str, Path], family: str, tmp_path: Path
) -> None:
    folder = _copy(checkpoints, family, tmp_path)
    file_name, projection, _ = MISNAMES[family]
    rename_tensor(folder / file_name, projection, projection.replace("weight", "kernel"))
    with pytest.raises(EncoderError):
        load_encoder(folder)


@pytest.mark.parametrize("family", list(MISNAMES))
def test_misnamed_backbone_weight_fails(
    checkpoints: dict[str, Path], family: str, tmp_path: Path
) -> None:
    folder = _copy(checkpoints, family, tmp_path)
    backbone = MISNAMES[family][2]
    rename_tensor(_backbone_file(folder), backbone, backbone.replace("layer", "lyr"))
    with pytest.raises(EncoderError, match="unused checkpoint weights") as caught:
        load_encoder(folder)
    assert "the checkpoint lacks" in str(caught.value)


def test_missing_backbone_weight_fails(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy(checkpoints, "bge-m3", tmp_path)
    drop_tensor(folder / "pytorch_model.bin", "encoder.layer.0.attention.output.LayerNorm.bias")
    with pytest.raises(EncoderError, match=r"lacks: .*LayerNorm\.bias"):
        load_encoder(folder)


def test_wrong_shape_fails(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy(checkpoints, "pylate", tmp_path)
    save_tensors(folder / "1_Dense" / "model.safetensors", {"linear.weight": torch.zeros(16, 31)})
    with pytest.raises(EncoderError, match="shape mismatches"):
        load_encoder(folder)


def test_jina_colbert_linear_name(tmp_path: Path) -> None:
    folder = write_jina_colbert(tmp_path / "jina", projection="colbert_linear")
    encoder: Any = load_encoder(folder)
    assert encoder.family == "colbert-jina"
    assert encoder.encode_queries(["cat"])[0].shape == (10, 16)


def test_options_and_errors(checkpoints: dict[str, Path]) -> None:
    encoder = load_encoder(checkpoints["colbert"], query_length=8, batch_size=1)
    assert encoder.encode_queries(["hello world"])[0].shape == (8, 16)
    with pytest.raises(EncoderError, match="unknown ColBERT option"):
        load_encoder(checkpoints["colbert"], qeury_length=8)
    with pytest.raises(EncoderError, match="text only"):
        encoder.encode_pages([PageContent(text=None)])
    # Lengths beyond the backbone's positions are clipped, not crashed into.
    clipped: Any = load_encoder(checkpoints["colbert"], document_length=10_000)
    assert clipped.prompts.document_length == 64
    assert clipped.encode_pages([PageContent(text=LONG_PAGE * 20)])[0].shape[1] == 16


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("family", list(WRITERS))
def test_cuda_half_precision_matches_cpu(
    encoders: dict[str, Any], checkpoints: dict[str, Path], family: str
) -> None:
    gpu: Any = load_encoder(checkpoints[family])
    assert gpu.device == "cuda" and gpu.dtype in ("bfloat16", "float16")
    # Precision is not part of the identity: CPU and GPU stores stay compatible.
    assert gpu.fingerprint == encoders[family].fingerprint
    for text_pages in ([PageContent(text=PAGE)], [PageContent(text=LONG_PAGE)]):
        on_gpu = gpu.encode_pages(text_pages)[0]
        on_cpu = encoders[family].encode_pages(text_pages)[0]
        assert on_gpu.dtype == np.float32 and on_gpu.shape == on_cpu.shape
        assert float(np.min(np.sum(on_gpu * on_cpu, axis=1))) > 0.98
    query = gpu.encode_queries(["what is late interaction"])[0]
    np.testing.assert_allclose(np.linalg.norm(query, axis=1), 1.0, atol=1e-3)


def test_hf_colbert_wins_over_sentence_transformers_files(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    folder = _copy(checkpoints, "colbert", tmp_path)
    pylate = checkpoints["pylate"]
    for name in ("modules.json", "config_sentence_transformers.json"):
        shutil.copy(pylate / name, folder / name)
    shutil.copytree(pylate / "1_Dense", folder / "1_Dense")
    encoder: Any = load_encoder(folder, device="cpu")
    assert encoder.family == "colbert" and encoder.prompts.query_marker == "[unused0]"


def test_rotary_config_with_standard_names_fails(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    folder = _copy(checkpoints, "colbert", tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["position_embedding_type"] = "rotary"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(EncoderError, match="rotary"):
        load_encoder(folder)
