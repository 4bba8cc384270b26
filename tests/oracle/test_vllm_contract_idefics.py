"""VLLMEncoder's ColModernVBert contract against the reference processors, token for token.

vLLM serves ColModernVBERT (``ColModernVBertForRetrieval``, the colmodernvbert-merged
``-hf`` layout) with ``token_embed`` pooling; it has no pooling class for ColIdefics3, so
only the ColModernVBert preset is served. Queries go in ``input`` and vLLM tokenizes them
with the checkpoint's tokenizer, so the client's text must tokenize to the reference
processor's ids. Pages: see the README's departures (vLLM's own image processing).
"""

from __future__ import annotations

from pathlib import Path

from latestore.encoders.base import PageContent
from latestore.encoders.prompts import PROMPT_PRESETS
from tests.encoders.vision_checkpoints import build_colmodernvbert
from tests.oracle.reference_idefics import EngineReference, build_engine_colmodernvbert
from tests.oracle.test_vllm_contract import _capturing_encoder, _served_query_ids
from tests.oracle.texts import QUERIES


def test_served_queries_match_colpali_engine(tmp_path: Path) -> None:
    reference = EngineReference(build_engine_colmodernvbert(tmp_path / "engine"), "colmodernvbert")
    served = _served_query_ids("colmodernvbert", reference.processor.tokenizer)
    assert served == reference.query_ids(QUERIES)


def test_served_queries_match_transformers_hf_processor(tmp_path: Path) -> None:
    from transformers import ColModernVBertProcessor

    processor = ColModernVBertProcessor.from_pretrained(str(build_colmodernvbert(tmp_path / "hf")))
    batch = processor.process_queries(text=QUERIES)
    mask = batch["attention_mask"].bool()
    expected = [batch["input_ids"][i][mask[i]].tolist() for i in range(len(QUERIES))]
    assert _served_query_ids("colmodernvbert", processor.tokenizer) == expected


def test_served_page_instruction_rebuilds_the_reference_page(tmp_path: Path) -> None:
    reference = EngineReference(build_engine_colmodernvbert(tmp_path / "engine"), "colmodernvbert")
    contract = PROMPT_PRESETS["colmodernvbert"]
    image_token = reference.processor.image_token
    expected = reference.processor.visual_prompt_prefix
    assert contract.page_with_image(image_token) == expected
    assert expected.split(image_token, 1)[1].startswith(contract.image_prompt)

    encoder, sent = _capturing_encoder("colmodernvbert")
    from PIL import Image

    encoder.encode_pages([PageContent(image=Image.new("RGB", (64, 64), "white"))])
    content = sent[0]["messages"][0]["content"]
    assert [part["type"] for part in content] == ["image_url", "text"]
    assert content[1]["text"] == contract.image_prompt
