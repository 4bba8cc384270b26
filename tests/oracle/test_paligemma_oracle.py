"""ColPali (PaliGemma) against colpali-engine 0.3.18, and the ``-hf`` ColPali against both.

The checkpoint is saved by colpali-engine's ``ColPali`` class; latestore loads it
through its registry as a user's directory, in the layout colpali-engine saves today
and under the names the published vidore/colpali-v1.3-merged carries. The same tensors
converted to transformers' ``ColPaliForRetrieval`` (the ``-hf`` layout) show where the
two reference implementations agree (the network) and where they do not (the prompts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import transformers

from latestore.encoders.base import PageContent
from latestore.encoders.prompts import COLPALI_ENGINE, PROMPT_PRESETS
from latestore.encoders.registry import load_encoder
from latestore.encoders.vision.colpali_engine import ColPaliEngineEncoder
from latestore.encoders.vision.transformers_native import ColVisionEncoder
from tests.oracle import inputs
from tests.oracle.record import TOLERANCE, Comparison, compare, maxsim
from tests.oracle.reference import ENGINE_VERSION
from tests.oracle.reference_gemma import (
    IMAGE_TOKENS,
    EngineColPali,
    HfColPali,
    build_engine_colpali,
    hf_layout,
    hub_layout,
)

TRANSFORMERS_VERSION = f"transformers {transformers.__version__}"
Vectors = tuple[list[np.ndarray], list[np.ndarray]]


@pytest.fixture(scope="module")
def page_images() -> list[Any]:
    return inputs.pages()


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_engine_colpali(tmp_path_factory.mktemp("colpali") / "engine")


@pytest.fixture(scope="module")
def reference(engine_dir: Path, page_images: list[Any]) -> tuple[EngineColPali, Vectors]:
    engine = EngineColPali(engine_dir)
    return engine, (engine.queries(inputs.QUERIES), engine.pages(page_images))


@pytest.fixture(scope="module")
def hf_dir(engine_dir: Path) -> Path:
    return hf_layout(engine_dir, engine_dir.parent / "hf")


def _ours(model_dir: Path, images: list[Any]) -> tuple[Any, Vectors]:
    encoder = load_encoder(model_dir, device="cpu")
    queries = encoder.encode_queries(inputs.QUERIES)
    pages = encoder.encode_pages([PageContent(image=image) for image in images])
    return encoder, (queries, pages)


@pytest.mark.parametrize(
    ("family", "layout"),
    [
        ("colpali (colpali-engine layout)", None),
        ("colpali (colpali-v1.3-merged names)", hub_layout),
    ],
)
def test_engine_colpali_equals_reference(
    family: str,
    layout: Any,
    engine_dir: Path,
    reference: tuple[EngineColPali, Vectors],
    page_images: list[Any],
    tmp_path: Path,
) -> None:
    model_dir = engine_dir if layout is None else layout(engine_dir, tmp_path / "hub")
    encoder, ours = _ours(model_dir, page_images)
    assert isinstance(encoder, ColPaliEngineEncoder)
    result = compare(family, ENGINE_VERSION, ours, reference[1])
    assert result.token_counts_equal, [v.shape for v in ours[0] + ours[1]]
    assert result.max_abs_diff <= TOLERANCE, result
    assert encoder.dim == ours[0][0].shape[1] == 128  # colpali-engine's fixed projection
    # Different pages give different vectors: the image reaches the output.
    assert not np.allclose(ours[1][0], ours[1][1], atol=1e-3)
    # A page is its image tokens plus the prompt, whatever the page's size.
    assert {v.shape[0] for v in ours[1]} == {len(reference[0].page_ids(page_images[0]))}


def test_engine_prompt_contract_is_the_reference_token_for_token(
    reference: tuple[EngineColPali, Vectors], page_images: list[Any]
) -> None:
    engine = reference[0]
    tokenizer = engine.processor.tokenizer
    ours = [
        tokenizer(COLPALI_ENGINE.query(q), add_special_tokens=False)["input_ids"]
        for q in inputs.QUERIES
    ]
    assert ours == engine.query_ids(inputs.QUERIES)
    page = COLPALI_ENGINE.page_with_image(engine.processor.image_token * IMAGE_TOKENS)
    for image in page_images:
        assert tokenizer(page, add_special_tokens=False)["input_ids"] == engine.page_ids(image)
    # What the contract spells out: two <bos> after the image, a closing newline.
    ids = engine.page_ids(page_images[0])
    bos, newline = tokenizer.convert_tokens_to_ids(["<bos>", "\n"])
    assert ids[IMAGE_TOKENS : IMAGE_TOKENS + 2] == [bos, bos] and ids[-1] == newline


def test_hf_network_equals_engine_on_the_same_inputs(
    reference: tuple[EngineColPali, Vectors], hf_dir: Path, page_images: list[Any]
) -> None:
    """transformers' ColPaliForRetrieval, converted weights, fed colpali-engine's batches."""
    engine, theirs = reference
    hf = HfColPali(hf_dir)
    queries = hf.run(engine.processor.process_queries(texts=inputs.QUERIES))
    pages = [hf.run(engine.processor.process_images(images=[image]))[0] for image in page_images]
    result = compare(
        "colpali-hf network (converted weights, colpali-engine inputs)",
        ENGINE_VERSION,
        (queries, pages),
        (engine.batched_queries(inputs.QUERIES), theirs[1]),
    )
    assert result.token_counts_equal
    assert result.max_abs_diff <= TOLERANCE, result


def test_latestore_hf_colpali_equals_transformers(hf_dir: Path, page_images: list[Any]) -> None:
    hf = HfColPali(hf_dir)
    theirs = (hf.queries(inputs.QUERIES), hf.pages(page_images))
    encoder, ours = _ours(hf_dir, page_images)
    assert isinstance(encoder, ColVisionEncoder)
    result = compare("colpali-hf (transformers processor)", TRANSFORMERS_VERSION, ours, theirs)
    assert result.token_counts_equal
    assert result.max_abs_diff <= TOLERANCE, result


def test_hf_prompt_contract_is_a_measured_difference_from_the_engine(
    reference: tuple[EngineColPali, Vectors], hf_dir: Path, page_images: list[Any]
) -> None:
    """Same weights, each library's own prompts: the -hf pipeline is not the engine's.

    transformers' ColPaliProcessor puts ``Question: `` before a query and a newline after
    it, and writes one ``<bos>`` after the image where colpali-engine's text yields two.
    """
    theirs = reference[1]
    hf = HfColPali(hf_dir)
    ours = (hf.queries(inputs.QUERIES), hf.pages(page_images))
    counts = [v.shape[0] for v in ours[0] + ours[1]]
    expected = [v.shape[0] for v in theirs[0] + theirs[1]]
    # "Question: " is 10 tokens, the newline 1; a page loses one <bos>.
    assert counts == [n + 11 for n in expected[: len(inputs.QUERIES)]] + [
        n - 1 for n in expected[len(inputs.QUERIES) :]
    ]
    ours_scores, theirs_scores = maxsim(*ours), maxsim(*theirs)
    score_diff = float((np.abs(ours_scores - theirs_scores) / np.abs(theirs_scores)).max())
    assert np.isfinite(score_diff) and score_diff > 1e-3
    Comparison(
        "colpali-hf vs colpali-engine (same weights, own prompts)",
        f"{ENGINE_VERSION}; {TRANSFORMERS_VERSION}",
        len(counts),
        False,
        float("inf"),
        score_diff,
        "known difference",
        "the -hf processor adds `Question: ` and a newline to queries and puts one `<bos>` "
        "after the image (engine: two)",
    ).write()


def test_reference_padded_query_batches_are_a_measured_difference(
    engine_dir: Path, reference: tuple[EngineColPali, Vectors], page_images: list[Any]
) -> None:
    """colpali-engine on transformers 5 runs a padded query batch causally, one query
    bidirectionally; latestore runs every query bidirectionally, whatever its batch."""
    engine, theirs = reference
    batched = engine.batched_queries(inputs.QUERIES)
    # Unpadded, the reference itself agrees with its one-at-a-time vectors...
    longest = max(range(len(inputs.QUERIES)), key=lambda i: theirs[0][i].shape[0])
    alone = engine.batched_queries([inputs.QUERIES[longest]] * 2)[0]
    assert float(np.abs(alone - theirs[0][longest]).max()) <= TOLERANCE
    # ...and padded, it does not, even for the row that needs no padding.
    _, ours = _ours(engine_dir, page_images)
    result = compare(
        "colpali (colpali-engine, padded query batch)",
        ENGINE_VERSION,
        ours,
        (batched, theirs[1]),
        known_difference="the reference runs a padded query batch causally (transformers 5 "
        "ignores PaliGemma's bidirectional attention once a padding mask is built); "
        "latestore always runs bidirectionally, as the reference does on one query",
    )
    assert result.token_counts_equal
    assert result.max_abs_diff > 1e-3 and result.status == "known difference"


def test_served_engine_queries_match_colpali_engine(
    reference: tuple[EngineColPali, Vectors],
) -> None:
    """VLLMEncoder with the ``colpali-engine`` preset sends the reference's query ids."""
    from tests.oracle.test_vllm_contract import _served_query_ids

    engine = reference[0]
    served = _served_query_ids("colpali-engine", engine.processor.tokenizer)
    assert served == engine.query_ids(inputs.QUERIES)
    assert PROMPT_PRESETS["colpali-engine"] is COLPALI_ENGINE
