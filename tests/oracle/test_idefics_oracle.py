"""ColModernVBert, ColIdefics3 and the ``-hf`` ColModernVBert / ColQwen2 against colpali-engine.

Reference checkpoints are saved by colpali-engine 0.3.18's own classes; latestore loads
them (or their ``-hf`` conversion, see :mod:`tests.oracle.hf_conversion`) through
``load_encoder`` as a user's directory, and the reference classes encode the same real
pages and queries.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latestore.encoders.base import PageContent
from latestore.encoders.registry import load_encoder
from tests.oracle import hf_conversion, inputs
from tests.oracle.record import TOLERANCE, Comparison, compare, maxsim
from tests.oracle.reference import ENGINE_VERSION, QWEN_SPECS, Reference, build_engine_qwen
from tests.oracle.reference_idefics import (
    EngineReference,
    build_engine_colidefics3,
    build_engine_colmodernvbert,
)

BUILDERS: dict[str, Callable[[Path], Path]] = {
    "colmodernvbert": build_engine_colmodernvbert,
    "colidefics3": build_engine_colidefics3,
}


@pytest.fixture(scope="module")
def page_images() -> list[Any]:
    return inputs.pages()


class _EngineDirs(dict[str, Path]):
    """Reference checkpoints built on first use (an xdist worker builds only its own)."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, key: str) -> Path:
        build = BUILDERS.get(key) or (lambda out: build_engine_qwen(key, out))
        self[key] = build(self.root / key)
        return self[key]


@pytest.fixture(scope="module")
def engine_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _EngineDirs(tmp_path_factory.mktemp("engine"))


def _ours(model_dir: Path, images: list[Any]) -> tuple[list[Any], list[Any]]:
    encoder = load_encoder(model_dir, device="cpu")
    queries = encoder.encode_queries(inputs.QUERIES)
    pages = encoder.encode_pages([PageContent(image=image) for image in images])
    return queries, pages


@pytest.mark.parametrize("family", list(BUILDERS))
def test_engine_checkpoint_equals_reference(
    family: str, engine_dirs: dict[str, Path], page_images: list[Any]
) -> None:
    model_dir = engine_dirs[family]
    reference = EngineReference(model_dir, family)
    theirs = reference.queries(inputs.QUERIES), reference.pages(page_images)
    ours = _ours(model_dir, page_images)
    result = compare(family, ENGINE_VERSION, ours, theirs)
    assert result.token_counts_equal, [q.shape for q in ours[0]]
    assert result.max_abs_diff <= TOLERANCE, result
    # colpali-engine hard-codes a 128-dim projection for both classes.
    assert ours[0][0].shape[1] == 128
    # Both ends of the budget ran: the 72 dpi page was tiled, the tiny one was not
    # shrunk into the same token count as a 2x2 split.
    assert len({page.shape[0] for page in ours[1]}) > 1


def test_hf_colmodernvbert_equals_reference(
    engine_dirs: dict[str, Path], page_images: list[Any], tmp_path: Path
) -> None:
    """transformers' ColModernVBertForRetrieval + processor on the reference's weights."""
    engine_dir = engine_dirs["colmodernvbert"]
    hf_dir = hf_conversion.colmodernvbert_hf(engine_dir, tmp_path / "hf")
    encoder = load_encoder(hf_dir, device="cpu")
    assert type(encoder).__name__ == "ColVisionEncoder"  # the -hf path, not ours
    reference = EngineReference(engine_dir, "colmodernvbert")
    theirs = reference.queries(inputs.QUERIES), reference.pages(page_images)
    ours = _ours(hf_dir, page_images)
    result = compare("colmodernvbert-hf (transformers classes)", ENGINE_VERSION, ours, theirs)
    assert result.token_counts_equal
    assert result.max_abs_diff <= TOLERANCE, result


COLQWEN2_HF_NOTE = (
    "transformers' ColQwen2Processor writes `Query: ` before a query and a newline after "
    "its augmentation; colpali-engine writes neither (vector figure: pages; query token "
    "counts differ). Pages equal once latestore passes the M-RoPE positions that "
    "ColQwen2ForRetrieval leaves out"
)


# vidore/colqwen2-v1.0-hf and colqwen2.5-v0.2-hf: both run by ColQwen2ForRetrieval.
HF_QWEN = {"colqwen2": "ColQwen2", "colqwen2.5": "ColQwen2_5"}


@pytest.mark.parametrize("key", list(HF_QWEN))
def test_hf_colqwen2_differs_from_reference_by_its_query_prompt(
    key: str, engine_dirs: dict[str, Path], page_images: list[Any], tmp_path: Path
) -> None:
    """transformers' ColQwen2ForRetrieval + processor on the reference's weights.

    Same weights, same page text: pages equal. The query prompt is the processor's own,
    so query vectors differ; the test pins the difference to exactly that text.
    """
    engine_dir = engine_dirs[key]
    hf_dir = hf_conversion.colqwen2_hf(engine_dir, tmp_path / "hf")
    reference = Reference(engine_dir, HF_QWEN[key], QWEN_SPECS[key].processor_class)
    theirs = reference.queries(inputs.QUERIES), reference.pages(page_images)
    ours = _ours(hf_dir, page_images)
    page_diff = max(float(np.abs(a - b).max()) for a, b in zip(ours[1], theirs[1], strict=True))
    ours_scores, theirs_scores = maxsim(*ours), maxsim(*theirs)
    score_diff = float((np.abs(ours_scores - theirs_scores) / np.abs(theirs_scores)).max())
    # Query token counts differ, so the vector figure is the pages'; scores are all pairs.
    Comparison(
        f"{key}-hf (transformers classes)",
        ENGINE_VERSION,
        len(ours[0]) + len(ours[1]),
        False,
        page_diff,
        score_diff,
        "known difference",
        COLQWEN2_HF_NOTE,
    ).write()
    assert page_diff <= TOLERANCE
    assert [q.shape[0] for q in ours[0]] != [q.shape[0] for q in theirs[0]]
    assert score_diff > TOLERANCE  # the prompt matters, or this row would be "equal"

    # Fed the -hf prompt text, the reference processor produces the -hf token ids and
    # the reference model the -hf vectors: the prompt is the whole difference.
    from transformers import ColQwen2Processor

    hf_processor = ColQwen2Processor.from_pretrained(str(hf_dir))
    augmentation = "<|endoftext|>" * 10
    for query, vectors in zip(inputs.QUERIES, ours[0], strict=True):
        hf_ids = hf_processor.process_queries(text=[query])["input_ids"][0].tolist()
        as_hf = ["Query: " + query]
        engine_ids = reference.processor.process_queries(texts=as_hf, suffix=augmentation + "\n")
        assert engine_ids["input_ids"][0].tolist() == hf_ids
        (same_prompt,) = reference._run(engine_ids)
        assert float(np.abs(same_prompt - vectors).max()) <= TOLERANCE


@pytest.mark.parametrize("key", list(HF_QWEN))
def test_hf_colqwen2_class_alone_misplaces_image_tokens(
    key: str, engine_dirs: dict[str, Path], page_images: list[Any], tmp_path: Path
) -> None:
    """Why latestore passes position ids: transformers' class alone differs on pages."""
    import torch
    from transformers import ColQwen2ForRetrieval, ColQwen2Processor

    engine_dir = engine_dirs[key]
    hf_dir = hf_conversion.colqwen2_hf(engine_dir, tmp_path / "hf")
    model = ColQwen2ForRetrieval.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    processor = ColQwen2Processor.from_pretrained(str(hf_dir))
    reference = Reference(engine_dir, HF_QWEN[key], QWEN_SPECS[key].processor_class)
    page = page_images[0]
    with torch.inference_mode():
        batch = processor.process_images(images=[page])
        theirs_as_is = model(**batch).embeddings[0].numpy()
    (engine_page,) = reference.pages([page])
    (ours_page,) = load_encoder(hf_dir, device="cpu").encode_pages([PageContent(image=page)])
    assert float(np.abs(theirs_as_is - engine_page).max()) > 1e-4
    assert float(np.abs(ours_page - engine_page).max()) <= TOLERANCE
