"""transformers-native ColVision retrievers: ColPali, ColQwen2/2.5 and ColModernVBert.

These checkpoints (vidore/colpali-v1.3-hf, vidore/colqwen2-v1.0-hf,
vidore/colqwen2.5-v0.2-hf style, ModernVBERT/colmodernvbert-merged) ship a
``*ForRetrieval`` class and a processor in transformers itself, which owns the prompt
contract (visual prompt, ``Query:``/``Question:`` prefix, augmentation tokens). We add
strict loading, the visual-token budget, batching and the store's vector format.

Visual-token budget per family:

* ColQwen2/2.5: ``min_pixels``/``max_pixels`` (tokens ~ pixels / 28**2).
* ColModernVBert: ``max_image_size`` (tile edge, pixels) and ``image_splitting``.
* ColPali: fixed by the checkpoint (448 px -> 1024 tokens); no knob to turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from latestore.encoders.base import PageContent, TokenVectors, revised_fingerprint
from latestore.encoders.registry import register
from latestore.encoders.vision.common import (
    architectures,
    in_batches,
    load_strict,
    page_images,
    pick_dtype,
    quiet_transformers,
    read_config,
    resolve_device,
    split_by_mask,
    weights_digest,
)
from latestore.errors import EncoderError

__all__ = ["ColVisionEncoder", "detect", "load"]


@dataclass(frozen=True)
class _Family:
    name: str
    model_class: str
    processor_class: str


FAMILIES: dict[str, _Family] = {
    "colpali": _Family("colpali", "ColPaliForRetrieval", "ColPaliProcessor"),
    "colqwen2": _Family("colqwen2", "ColQwen2ForRetrieval", "ColQwen2Processor"),
    "colmodernvbert": _Family(
        "colmodernvbert", "ColModernVBertForRetrieval", "ColModernVBertProcessor"
    ),
}


def _family_of(config: dict[str, Any]) -> _Family | None:
    family = FAMILIES.get(str(config.get("model_type", "")))
    if family is not None:
        return family
    for arch in architectures(config):
        for candidate in FAMILIES.values():
            if arch == candidate.model_class:
                return candidate
    return None


def detect(model_dir: Path, config: dict[str, Any]) -> bool:
    return _family_of(config) is not None


@register("colvision-hf", detect=detect)
def load(model_dir: Path, **options: Any) -> ColVisionEncoder:
    return ColVisionEncoder(model_dir, **options)


class ColVisionEncoder:
    """Page-image and query vectors from a transformers-native ColVision checkpoint.

    Parameters
    ----------
    model_dir:
        Local checkpoint directory (config.json, *.safetensors, processor files).
    min_pixels, max_pixels:
        ColQwen2 visual-token budget; pages are resized into this pixel range.
    max_image_size, image_splitting:
        ColModernVBert tile size (longest edge) and whether large pages are tiled.
    device, dtype:
        CUDA with bf16 when present, else CPU with fp32.
    """

    def __init__(
        self,
        model_dir: Path | str,
        *,
        device: str | None = None,
        dtype: torch.dtype | str | None = None,
        batch_size: int = 4,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        max_image_size: int | None = None,
        image_splitting: bool | None = None,
    ) -> None:
        import transformers

        self.model_dir = Path(model_dir)
        config = read_config(self.model_dir)
        family = _family_of(config)
        if family is None:
            raise EncoderError(f"{self.model_dir} is not a ColPali/ColQwen2/ColModernVBert model")
        model_class = getattr(transformers, family.model_class, None)
        processor_class = getattr(transformers, family.processor_class, None)
        if model_class is None or processor_class is None:
            raise EncoderError(
                f"transformers {transformers.__version__} has no {family.model_class}; upgrade it"
            )
        self.family = family.name
        self.name = f"{family.name}:{self.model_dir.name}"
        self.device = resolve_device(device)
        self.dtype = pick_dtype(self.device, dtype)
        self.batch_size = batch_size
        with quiet_transformers():
            self._processor = processor_class.from_pretrained(str(self.model_dir))
        budget = self._apply_budget(min_pixels, max_pixels, max_image_size, image_splitting)
        self._model = load_strict(model_class, self.model_dir, self.device, self.dtype)
        self.dim = int(self._model.config.embedding_dim)
        # Revision 2 of the -hf ColQwen2 family: image tokens get M-RoPE grid positions
        # (before 2026-11-27, transformers' text positions; see _qwen_image_positions).
        revision = 2 if family.name == "colqwen2" else 1
        self.revision_note = (
            "page vectors now use the M-RoPE grid positions of image tokens" if revision > 1 else ""
        )
        self.fingerprint, self.supersedes = revised_fingerprint(
            {
                "family": family.name,
                "weights": weights_digest(self.model_dir),
                "dim": self.dim,
                "visual_prompt": getattr(self._processor, "visual_prompt_prefix", None),
                "query_prefix": getattr(self._processor, "query_prefix", None),
                "query_augmentation": getattr(self._processor, "query_augmentation_token", None),
                "budget": budget,
            },
            revision,
        )

    def _apply_budget(
        self,
        min_pixels: int | None,
        max_pixels: int | None,
        max_image_size: int | None,
        image_splitting: bool | None,
    ) -> dict[str, Any]:
        image_processor = self._processor.image_processor
        if self.family == "colqwen2":
            if max_image_size is not None or image_splitting is not None:
                raise EncoderError("colqwen2 takes min_pixels/max_pixels, not max_image_size")
            size = dict(image_processor.size)
            size["shortest_edge"] = min_pixels or size["shortest_edge"]
            size["longest_edge"] = max_pixels or size["longest_edge"]
            if size["shortest_edge"] > size["longest_edge"]:
                raise EncoderError("min_pixels must not exceed max_pixels")
            image_processor.size = size
            # Legacy attributes would override `size` at call time (and warn).
            for legacy in ("min_pixels", "max_pixels"):
                if getattr(image_processor, legacy, None) is not None:
                    setattr(image_processor, legacy, None)
            return {"min_pixels": size["shortest_edge"], "max_pixels": size["longest_edge"]}
        if min_pixels is not None or max_pixels is not None:
            raise EncoderError(f"{self.family} has no pixel budget; min/max_pixels are for ColQwen")
        if self.family == "colmodernvbert":
            # The tile edge is the vision tower's input size (its position
            # embeddings are for that size only); any other value failed at encode time.
            tile = int(image_processor.max_image_size["longest_edge"])
            if max_image_size is not None and max_image_size != tile:
                raise EncoderError(
                    f"colmodernvbert tiles are {tile} px (the vision tower's input size); "
                    f"max_image_size={max_image_size} cannot change it"
                )
            if image_splitting is not None:
                image_processor.do_image_splitting = image_splitting
            return {
                "max_image_size": dict(image_processor.max_image_size),
                "image_splitting": bool(image_processor.do_image_splitting),
                "size": dict(image_processor.size),
            }
        if max_image_size is not None or image_splitting is not None:
            raise EncoderError("colpali's image size is fixed by the checkpoint")
        return {"size": dict(image_processor.size)}

    def encode_queries(self, queries: Sequence[str]) -> list[TokenVectors]:
        return in_batches(list(queries), self.batch_size, self._queries)

    def encode_pages(self, pages: Sequence[PageContent]) -> list[TokenVectors]:
        return in_batches(page_images(pages, self.family), self.batch_size, self._images)

    def _queries(self, texts: list[str]) -> list[TokenVectors]:
        return self._run(self._processor.process_queries(text=texts))

    def _images(self, images: list[Any]) -> list[TokenVectors]:
        return self._run(self._processor.process_images(images=images))

    def _run(self, batch: Any) -> list[TokenVectors]:
        inputs = {k: v.to(self.device) for k, v in batch.items() if k != "labels"}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        if self.family == "colqwen2" and "image_grid_thw" in inputs:
            inputs["position_ids"] = _qwen_image_positions(self._model, inputs)
        embeddings = self._model(**inputs).embeddings
        return split_by_mask(embeddings, inputs["attention_mask"])


# -- M-RoPE positions for the -hf ColQwen2 (found by the colpali-engine oracle) --
def _qwen_image_positions(model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The 3D (M-RoPE) position ids of a page batch, as colpali-engine's ColQwen2 runs.

    transformers' ``ColQwen2ForRetrieval`` hands its backbone ``inputs_embeds`` only, so
    without these the backbone cannot place image tokens on their (h, w) grid and numbers
    them like text: page vectors then differ from colpali-engine's (measured 6e-4 max abs
    on the tiny oracle checkpoint, 0 with the positions passed).
    """
    vlm = model.vlm
    input_ids = inputs["input_ids"]
    image_token = int(model.config.vlm_config.image_token_id)
    positions, _ = vlm.get_rope_index(
        input_ids,
        mm_token_type_ids=(input_ids == image_token).int(),
        image_grid_thw=inputs["image_grid_thw"],
        attention_mask=inputs["attention_mask"],
    )
    return positions  # type: ignore[no-any-return]
