"""ColPali checkpoints as colpali-engine saves them (vidore/colpali-v1.3-merged style).

colpali-engine's ``ColPali`` class is a ``PaliGemmaForConditionalGeneration`` plus
``custom_text_proj``; its directories say ``model_type: paligemma`` and
``architectures: ["ColPali"]`` and name their weights::

    model.language_model.model.*      Gemma decoder
    model.vision_tower[.vision_model].*  SigLIP tower (``vision_model.`` before transformers 5)
    model.multi_modal_projector.*
    model.language_model.lm_head.*    tied to the embeddings; retrieval never uses it
    custom_text_proj.*                the 128-dim projection

The network is the one transformers ships as ``ColPaliForRetrieval`` (PaliGemma's last
normed hidden state -> linear -> L2 norm), so the weights are renamed onto that class
rather than colpali-engine being a dependency. The prompt contract is colpali-engine's
(:data:`~latestore.encoders.prompts.COLPALI_ENGINE`), not the ``-hf`` processor's: no
``Question:`` prefix and no trailing newline on queries.

Attention is bidirectional over every token, queries and pages alike (PaliGemma's prefix
attention, selected by all-zero ``token_type_ids``). That is what transformers 4.x, on
which ColPali was trained, ran outside training, and what colpali-engine 0.3.18 on
transformers 5 runs for a page or an unpadded query batch. For a *padded* query batch
transformers 5 builds a causal mask instead (its padding mask ignores the config's
``use_bidirectional_attention``), so the reference's query vectors change with their
batch-mates; latestore's do not. The measured difference is in the README.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from latestore.encoders.base import PageContent, TokenVectors, fingerprint_of
from latestore.encoders.checkpoint import read_json
from latestore.encoders.prompts import COLPALI_ENGINE, PromptContract
from latestore.encoders.registry import register
from latestore.encoders.vision import common as vision
from latestore.errors import EncoderError

__all__ = ["ENGINE_KEY_MAPPING", "ColPaliEngineEncoder", "detect", "load"]

# Checkpoint name (regex) -> ColPaliForRetrieval name. Order matters: the SigLIP rule
# that drops ``vision_model.`` must run before the plain tower rule.
ENGINE_KEY_MAPPING: dict[str, str] = {
    r"^(?:model\.)?language_model\.model\.": "vlm.language_model.",
    r"^model\.model\.language_model\.": "vlm.language_model.",
    r"^(?:model\.)?vision_tower\.vision_model\.": "vlm.vision_tower.",
    r"^(?:model\.){1,2}vision_tower\.": "vlm.vision_tower.",
    r"^(?:model\.){1,2}multi_modal_projector\.": "vlm.multi_modal_projector.",
    r"^(?:base_model\.model\.)?custom_text_proj\.": "embedding_proj_layer.",
}
_PROJECTION_NAMES = ("custom_text_proj.weight", "base_model.model.custom_text_proj.weight")


def _is_engine_colpali(config: dict[str, Any]) -> bool:
    return config.get("model_type") == "paligemma" and "ColPali" in vision.architectures(config)


def _is_adapter(model_dir: Path) -> bool:
    adapter = read_json(model_dir / "adapter_config.json")
    return "colpali" in str(adapter.get("base_model_name_or_path", "")).lower()


def detect(model_dir: Path, config: dict[str, Any]) -> bool:
    # A PEFT adapter (vidore/colpali-v1.3 itself) is claimed only to be refused clearly.
    return _is_engine_colpali(config) or (not config and _is_adapter(model_dir))


@register("colpali-engine", detect=detect)
def load(model_dir: Path, **options: Any) -> ColPaliEngineEncoder:
    return ColPaliEngineEncoder(model_dir, **options)


def _projection_dim(model_dir: Path) -> int:
    from safetensors import safe_open

    for path in vision.weight_files(model_dir):
        if path.suffix != ".safetensors":
            break
        with safe_open(str(path), "pt") as handle:
            for name in _PROJECTION_NAMES:
                if name in handle.keys():  # noqa: SIM118 - safe_open is not a Mapping
                    return int(handle.get_slice(name).get_shape()[0])
    raise EncoderError(
        f"{model_dir}: no custom_text_proj weights in its safetensors files; "
        "not a colpali-engine ColPali checkpoint"
    )


class ColPaliEngineEncoder:
    """Page-image and query vectors from a colpali-engine ColPali checkpoint.

    Parameters
    ----------
    model_dir:
        Directory with config.json (PaliGemma), safetensors weights, tokenizer and
        preprocessor files.
    device, dtype:
        CUDA with bf16 when present, else CPU with fp32.
    prompts:
        Override the prompt contract (default: colpali-engine's).
    """

    family = "colpali-engine"

    def __init__(
        self,
        model_dir: Path | str,
        *,
        device: str | None = None,
        dtype: torch.dtype | str | None = None,
        batch_size: int = 4,
        prompts: PromptContract | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        config = read_json(self.model_dir / "config.json")
        if not _is_engine_colpali(config):
            if _is_adapter(self.model_dir):
                raise EncoderError(
                    f"{self.model_dir} is a PEFT adapter over a ColPali base; merge it into "
                    "its base model (or use the -merged checkpoint) and load that directory"
                )
            raise EncoderError(f"{self.model_dir} is not a colpali-engine ColPali checkpoint")
        self.prompts = prompts or COLPALI_ENGINE
        if "{image}" not in self.prompts.page_template:
            raise EncoderError("page_template must contain {image}")
        self.name = f"colpali:{self.model_dir.name}"
        self.device = vision.resolve_device(device)
        self.dtype = vision.pick_dtype(self.device, dtype)
        self.batch_size = batch_size
        self._load_processor()
        self._model = self._load_model(config)
        self.dim = int(self._model.config.embedding_dim)
        self.fingerprint = fingerprint_of(
            {
                "family": self.family,
                "weights": vision.weights_digest(self.model_dir),
                "dim": self.dim,
                "prompts": asdict(self.prompts),
                "image_size": dict(self._images_in.size),
            }
        )

    def _load_processor(self) -> None:
        import transformers

        auto_tokenizer: Any = transformers.AutoTokenizer
        auto_image_processor: Any = transformers.AutoImageProcessor
        paligemma_processor: Any = transformers.PaliGemmaProcessor
        try:
            with vision.quiet_transformers():
                images_in = auto_image_processor.from_pretrained(str(self.model_dir))
                # PaliGemmaProcessor registers <image> and the <locNNNN>/<segNNN> tokens
                # and turns the tokenizer's own <bos> off, as colpali-engine's does.
                processor = paligemma_processor(
                    image_processor=images_in,
                    tokenizer=auto_tokenizer.from_pretrained(str(self.model_dir)),
                )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EncoderError(f"cannot load the processor of {self.model_dir}: {exc}") from exc
        self._tokenizer = processor.tokenizer
        self._images_in = processor.image_processor
        self._image_token = str(processor.image_token)
        self._image_span = self._image_token * int(processor.image_seq_length)

    def _load_model(self, config: dict[str, Any]) -> Any:
        from transformers import ColPaliConfig, ColPaliForRetrieval

        model_class: Any = ColPaliForRetrieval
        vlm_config = {k: v for k, v in config.items() if k not in ("architectures", "auto_map")}
        retrieval_config = ColPaliConfig(
            vlm_config=vlm_config, embedding_dim=_projection_dim(self.model_dir)
        )
        try:
            with vision.quiet_transformers():
                model, info = model_class.from_pretrained(
                    str(self.model_dir),
                    config=retrieval_config,
                    key_mapping=ENGINE_KEY_MAPPING,
                    dtype=self.dtype,
                    output_loading_info=True,
                )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise EncoderError(f"cannot load {self.model_dir}: {exc}") from exc
        vision.check_loading_info(self.model_dir, info)
        return model.to(self.device).eval()

    def page_token_ids(self) -> list[int]:
        """The ids of a page's prompt, one per stored page vector and in their order:
        ``image_seq_length`` image tokens (a square patch grid, row-major), then the text.
        The same for every page, since every page is resized to one square."""
        batch = self._tokenize([self.prompts.page_with_image(self._image_span)])
        return [int(i) for i in batch["input_ids"][0]]

    @property
    def image_token_id(self) -> int:
        return int(self._tokenizer.convert_tokens_to_ids(self._image_token))

    def encode_queries(self, queries: Sequence[str]) -> list[TokenVectors]:
        texts = [self.prompts.query(q) for q in queries]
        return vision.in_batches(texts, self.batch_size, self._texts)

    def encode_pages(self, pages: Sequence[PageContent]) -> list[TokenVectors]:
        return vision.in_batches(
            vision.page_images(pages, "colpali"), self.batch_size, self._images
        )

    def _tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        # The contract writes <bos> itself; the reference tokenizer adds nothing either.
        return dict(
            self._tokenizer(
                texts,
                padding="longest",
                add_special_tokens=False,
                return_token_type_ids=False,
                return_tensors="pt",
            )
        )

    def _texts(self, texts: list[str]) -> list[TokenVectors]:
        return self._run(self._tokenize(texts))

    def _images(self, images: list[Any]) -> list[TokenVectors]:
        batch = self._tokenize([self.prompts.page_with_image(self._image_span)] * len(images))
        batch["pixel_values"] = self._images_in(images=images, return_tensors="pt")["pixel_values"]
        return self._run(batch)

    def _run(self, batch: dict[str, torch.Tensor]) -> list[TokenVectors]:
        # All-zero token types select PaliGemma's bidirectional prefix attention, with or
        # without padding in the batch (see the module docstring).
        batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
        inputs = {k: v.to(self.device) for k, v in batch.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        embeddings = self._model(**inputs, use_cache=False).embeddings
        return vision.split_by_mask(embeddings, inputs["attention_mask"])
