"""What VLLMEncoder sends, token for token, against the reference processors.

vLLM applies no retrieval prompt of its own, so the client's contract must make the
server see what the reference processor feeds the model. The requests are captured at
httpx's transport seam (no server is needed to see a request) and their text tokenized
with the checkpoint's own tokenizer, as vLLM tokenizes ``input``.

Page requests carry the image and the instruction; vLLM wraps them in the checkpoint's
chat template, which the tiny tokenizers lack, so for pages the check is that the
contract's instruction and local page template rebuild the reference's page text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from latestore.encoders.base import PageContent
from latestore.encoders.prompts import PROMPT_PRESETS, QWEN_VISION_SPAN
from latestore.encoders.remote import VLLMEncoder
from tests.encoders.vision_checkpoints import build_colpali, build_colqwen2
from tests.oracle.reference import Reference, build_engine_qwen
from tests.oracle.texts import QUERIES

DIM = 8


def _capturing_encoder(preset: str) -> tuple[VLLMEncoder, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        sent.append(payload)
        count = len(payload["input"]) if "input" in payload else 1
        data = [{"index": i, "data": [[1.0] * DIM]} for i in range(count)]
        return httpx.Response(200, json={"data": data})

    client = httpx.Client(transport=httpx.MockTransport(answer))
    encoder = VLLMEncoder(
        "http://vllm.invalid/v1", "m", dim=DIM, prompts=PROMPT_PRESETS[preset], client=client
    )
    return encoder, sent


def _served_query_ids(preset: str, tokenizer: Any) -> list[list[int]]:
    encoder, sent = _capturing_encoder(preset)
    encoder.encode_queries(QUERIES)
    texts = [text for payload in sent for text in payload["input"]]
    return [tokenizer(text)["input_ids"] for text in texts]


ENGINE_PRESETS = [
    ("colqwen-engine", "colqwen2", "ColQwen2", "ColQwen2Processor"),
    ("colqwen3", "colqwen3", "ColQwen3", "ColQwen3Processor"),
    ("colqwen3.5", "colqwen3.5-128", "ColQwen3_5", "ColQwen3_5Processor"),
]


@pytest.mark.parametrize(("preset", "key", "model_class", "processor_class"), ENGINE_PRESETS)
def test_served_queries_match_colpali_engine(
    preset: str, key: str, model_class: str, processor_class: str, tmp_path: Path
) -> None:
    reference = Reference(build_engine_qwen(key, tmp_path / key), model_class, processor_class)
    served = _served_query_ids(preset, reference.processor.tokenizer)
    assert served == reference.query_ids(QUERIES)


@pytest.mark.parametrize(("preset", "key", "model_class", "processor_class"), ENGINE_PRESETS)
def test_served_page_instruction_rebuilds_the_reference_page(
    preset: str, key: str, model_class: str, processor_class: str, tmp_path: Path
) -> None:
    reference = Reference(build_engine_qwen(key, tmp_path / key), model_class, processor_class)
    contract = PROMPT_PRESETS[preset]
    expected = reference.processor.visual_prompt_prefix
    assert contract.page_with_image(QWEN_VISION_SPAN) == expected
    # The instruction vLLM receives is what follows the image in the reference text.
    assert expected.split(QWEN_VISION_SPAN, 1)[1].startswith(contract.image_prompt)

    encoder, sent = _capturing_encoder(preset)
    from PIL import Image

    encoder.encode_pages([PageContent(image=Image.new("RGB", (64, 64), "white"))])
    content = sent[0]["messages"][0]["content"]
    assert [part["type"] for part in content] == ["image_url", "text"]
    assert content[1]["text"] == contract.image_prompt


@pytest.mark.parametrize(
    ("preset", "processor_class", "build"),
    [
        # vidore/colqwen2-v1.0-hf and vidore/colpali-v1.3-hf: transformers' processors.
        ("colqwen2", "ColQwen2Processor", build_colqwen2),
        ("colpali", "ColPaliProcessor", build_colpali),
    ],
)
def test_served_hf_queries_match_transformers(
    preset: str, processor_class: str, build: Any, tmp_path: Path
) -> None:
    import transformers

    model_dir = build(tmp_path / "hf")
    processor = getattr(transformers, processor_class).from_pretrained(str(model_dir))
    batch = processor(text=QUERIES, padding="longest", return_tensors="pt")
    mask = batch["attention_mask"].bool()
    expected = [batch["input_ids"][i][mask[i]].tolist() for i in range(len(QUERIES))]
    assert _served_query_ids(preset, processor.tokenizer) == expected
