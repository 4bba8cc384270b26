"""Idefics3-style retrievers as colpali-engine saves them: ColModernVBert and ColIdefics3.

colpali-engine 0.3.18's ``ColModernVBert`` and ``ColIdefics3`` are a transformers
backbone (``ModernVBertModel`` / ``Idefics3Model``) plus one linear projection, and
their processors are ``Idefics3Processor`` subclasses that only add a prompt contract
(:data:`~latestore.encoders.prompts.MODERNVBERT_ENGINE`,
:data:`~latestore.encoders.prompts.IDEFICS3_ENGINE`). So we run exactly those pieces:
the transformers backbone built from the checkpoint's config, the saved weights mapped
onto it by name (strictly: a weight with no home is refused), transformers'
``Idefics3Processor`` with the checkpoint's image processor and tokenizer, and the
contract's text. Per token: last hidden state -> projection -> L2 norm.

Visual tokens per page: the page is resized so its longest edge is ``longest_edge``
pixels (the image processor's ``size``), cut into tiles of the vision tower's input size
(when ``image_splitting``) plus one global view, each tile ``image_seq_len`` tokens. So
``longest_edge`` and ``image_splitting`` are the budget knobs; the tile edge
(``max_image_size``) is fixed by the tower, which has position embeddings for that size
only, so any other value is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import torch

from latestore.encoders.base import PageContent, TokenVectors, fingerprint_of
from latestore.encoders.checkpoint import read_json, read_tensors
from latestore.encoders.prompts import PromptContract
from latestore.encoders.vision import common as vision
from latestore.errors import EncoderError

__all__ = ["IdeficsEngineEncoder", "IdeficsRetriever"]

# Config keys of the retrieval wrapper that the backbone config does not take.
_NOT_BACKBONE_CONFIG = {"architectures", "auto_map", "transformers_version", "model_type"}
_IGNORED = ("lm_head.", "model.lm_head.")


class IdeficsRetriever(torch.nn.Module):
    """A backbone and its projection: the forward pass of colpali-engine's classes."""

    def __init__(self, backbone: torch.nn.Module, hidden: int, dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection = torch.nn.Linear(hidden, dim)

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(**batch, use_cache=False)[0]
        projected: torch.Tensor = self.projection(hidden)
        return projected


class IdeficsEngineEncoder:
    """Page-image and query vectors from a colpali-engine Idefics3-style checkpoint.

    Subclasses name the family, its transformers backbone classes, the weight prefixes
    colpali-engine saves, and the prompt contract.

    Parameters
    ----------
    model_dir:
        Checkpoint directory (config.json, model.safetensors, tokenizer and processor).
    longest_edge, image_splitting:
        Page size before tiling (pixels, longest edge) and whether pages are tiled.
    max_image_size:
        Accepted only as the tower's own tile edge (it cannot change).
    device, dtype:
        CUDA with bf16 when present, else CPU with fp32.
    """

    family: ClassVar[str] = ""
    config_class: ClassVar[str] = ""
    model_class: ClassVar[str] = ""
    # First matching prefix wins; the rest of the name is the backbone's (or projection's).
    backbone_prefixes: ClassVar[tuple[str, ...]] = ()
    projection_prefixes: ClassVar[tuple[str, ...]] = ()
    contract: ClassVar[PromptContract] = PromptContract()

    def __init__(
        self,
        model_dir: Path | str,
        config: dict[str, Any] | None = None,
        *,
        device: str | None = None,
        dtype: torch.dtype | str | None = None,
        batch_size: int = 4,
        longest_edge: int | None = None,
        image_splitting: bool | None = None,
        max_image_size: int | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        config = vision.read_config(self.model_dir) if config is None else config
        self.name = f"{self.family}:{self.model_dir.name}"
        self.device = vision.resolve_device(device)
        self.dtype = vision.pick_dtype(self.device, dtype)
        if batch_size < 1:
            raise EncoderError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        # Config, processor and budget first: a bad option is refused before the weights load.
        backbone_config = self._backbone_config(config)
        self._tile = int(backbone_config.vision_config.image_size)
        self._processor = self._load_processor(self._image_seq_len(backbone_config))
        budget = self._apply_budget(longest_edge, image_splitting, max_image_size)
        self._model = self._load_model(backbone_config)
        self.dim = int(self._model.projection.out_features)
        self.fingerprint = fingerprint_of(
            {
                "family": self.family,
                "layout": "colpali-engine",
                "weights": vision.weights_digest(self.model_dir),
                "dim": self.dim,
                "prompts": asdict(self.contract),
                "budget": budget,
            }
        )

    # -- loading --------------------------------------------------------------------

    @staticmethod
    def _image_seq_len(config: Any) -> int:
        """Tokens per tile; overridden per family (the config names its factor)."""
        raise NotImplementedError

    def _backbone_config(self, config: dict[str, Any]) -> Any:
        import transformers

        config_class: Any = getattr(transformers, self.config_class)
        try:
            return config_class.from_dict(
                {k: v for k, v in config.items() if k not in _NOT_BACKBONE_CONFIG}
            )
        except (TypeError, ValueError, KeyError) as exc:
            raise EncoderError(f"{self.model_dir}: not a {self.config_class}: {exc}") from exc

    def _backbone(self, backbone_config: Any) -> Any:
        import transformers

        model_class: Any = getattr(transformers, self.model_class)
        return vision.build_for_weights(model_class, backbone_config, self.dtype)

    def _map_names(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """colpali-engine's saved names -> ``backbone.*`` / ``projection.*``."""
        mapped: dict[str, torch.Tensor] = {}
        for name, tensor in tensors.items():
            if name.startswith(_IGNORED):
                continue
            projection = next((p for p in self.projection_prefixes if name.startswith(p)), None)
            backbone = next((p for p in self.backbone_prefixes if name.startswith(p)), None)
            if projection is not None:
                target = "projection." + name[len(projection) :]
            elif backbone is not None:
                target = "backbone." + name[len(backbone) :]
            else:
                target = name  # left as is: the key check names it as unexpected
            if target in mapped:
                raise EncoderError(f"{self.model_dir}: two weights map onto {target}")
            mapped[target] = tensor
        return mapped

    def _load_model(self, backbone_config: Any) -> IdeficsRetriever:
        state = self._map_names(read_tensors(vision.weight_files(self.model_dir)))
        backbone = self._backbone(backbone_config)
        hidden = int(backbone.config.text_config.hidden_size)
        weight = state.get("projection.weight")
        if weight is None or weight.ndim != 2 or weight.shape[1] != hidden:
            shape = None if weight is None else tuple(weight.shape)
            raise EncoderError(
                f"{self.model_dir}: no projection of shape (dim, {hidden}) among "
                f"{', '.join(self.projection_prefixes)} (found {shape})"
            )
        model = IdeficsRetriever(backbone, hidden, int(weight.shape[0]))
        vision.check_key_sets(self.model_dir, model.state_dict().keys(), state.keys())
        model.load_state_dict(state, strict=True)
        return model.to(device=self.device, dtype=self.dtype).eval()

    def _load_processor(self, image_seq_len: int) -> Any:
        # transformers' Idefics3Processor is the base of both colpali-engine processors;
        # the tokens per tile come from the model config, so they always fit the model.
        import transformers

        processor_class: Any = transformers.Idefics3Processor
        image_processor_class: Any = transformers.Idefics3ImageProcessor
        auto_tokenizer: Any = transformers.AutoTokenizer
        folder = str(self.model_dir)
        try:
            with vision.quiet_transformers():
                saved = read_json(self.model_dir / "processor_config.json").get("image_processor")
                if isinstance(saved, dict):
                    image_processor = image_processor_class.from_dict(saved)
                else:
                    image_processor = image_processor_class.from_pretrained(folder)
                tokenizer = auto_tokenizer.from_pretrained(folder)
                return processor_class(
                    image_processor=image_processor,
                    tokenizer=tokenizer,
                    image_seq_len=image_seq_len,
                )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EncoderError(f"cannot load the processor of {self.model_dir}: {exc}") from exc

    def _apply_budget(
        self, longest_edge: int | None, image_splitting: bool | None, max_image_size: int | None
    ) -> dict[str, Any]:
        image_processor = self._processor.image_processor
        tile = self._tile
        if max_image_size is not None and max_image_size != tile:
            raise EncoderError(
                f"{self.family} tiles are {tile} px, the vision tower's input size; "
                f"max_image_size={max_image_size} cannot change it (set longest_edge instead)"
            )
        if longest_edge is not None:
            if longest_edge < tile:
                raise EncoderError(f"longest_edge must be at least the {tile} px tile size")
            image_processor.size = {"longest_edge": int(longest_edge)}
        if image_splitting is not None:
            image_processor.do_image_splitting = bool(image_splitting)
        return {
            "longest_edge": int(image_processor.size["longest_edge"]),
            "tile": tile,
            "image_splitting": bool(image_processor.do_image_splitting),
        }

    # -- encoding -------------------------------------------------------------------

    def encode_queries(self, queries: Sequence[str]) -> list[TokenVectors]:
        texts = [self.contract.query(q) for q in queries]
        return vision.in_batches(texts, self.batch_size, self._texts)

    def encode_pages(self, pages: Sequence[PageContent]) -> list[TokenVectors]:
        images = vision.page_images(pages, self.family)
        return vision.in_batches(images, self.batch_size, self._images)

    def _texts(self, texts: list[str]) -> list[TokenVectors]:
        return self._run(self._processor(text=texts, padding="longest", return_tensors="pt"))

    def _images(self, images: list[Any]) -> list[TokenVectors]:
        page = self.contract.page_with_image(self._processor.image_token)
        batch = self._processor(
            text=[page] * len(images), images=images, padding="longest", return_tensors="pt"
        )
        return self._run(batch)

    def _run(self, batch: Any) -> list[TokenVectors]:
        inputs = {k: v.to(self.device) for k, v in batch.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        return vision.split_by_mask(self._model(**inputs), inputs["attention_mask"])
