"""The engine behind ColQwen2/2.5 (colpali-engine layout), ColQwen3 and ColQwen3.5.

A Qwen vision-language backbone + projection. These checkpoints ship no transformers
``*ForRetrieval`` class (remote code or colpali-engine's own classes), so we build the
backbone (``Qwen2VLModel`` ... ``Qwen3_5Model``) from the checkpoint's
config, map each published weight naming onto it by hand and refuse any weight that finds
no home. Per token: last hidden state -> linear projection -> L2 norm.

Weight namings handled (backbone ``visual.*`` and ``language_model.*``):

* ``vlm.model.visual.*`` / ``vlm.model.language_model.*`` (TomoroAI tomoro-colqwen3-embed)
* ``model.visual.*`` / ``model.language_model.*`` (nemotron-colembed, colpali-engine saves)
* ``visual.*`` / ``language_model.*`` unprefixed (OpenSearch-AI Ops-Colqwen3)

and the projection as ``embedding_proj_layer`` or ``custom_text_proj`` (bias optional),
under the same prefixes (colpali-engine saves ``model.custom_text_proj``).

One engine serves every Qwen generation: a subclass names its transformers config and
model classes (:class:`QwenBackbone`); Qwen3.5's hybrid layers get their own masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from latestore.encoders.base import PageContent, TokenVectors, fingerprint_of
from latestore.encoders.prompts import QWEN_ENGINE, QWEN_VISION_SPAN, PromptContract
from latestore.encoders.vision import common as vision
from latestore.errors import EncoderError

# Most specific first: the first matching prefix is stripped.
BACKBONE_PREFIXES = ("vlm.model.", "vlm.", "model.", "")
PROJECTION_NAMES = ("embedding_proj_layer.", "custom_text_proj.")
IGNORED_PREFIXES = ("lm_head.", "vlm.lm_head.", "model.lm_head.")
DIM_KEYS = ("embed_dim", "dims", "dim", "projection_dim", "colbert_dim")
# Config keys of the retrieval wrapper that the backbone config does not take.
_NOT_BACKBONE_CONFIG = {"model_type", "architectures", "auto_map", "transformers_version"}


@dataclass(frozen=True)
class QwenBackbone:
    """Which transformers classes build a generation's backbone."""

    config_class: str
    model_class: str
    # Qwen3.5 interleaves recurrent (Gated-DeltaNet) layers with attention layers.
    hybrid: bool = False


def backbone_config(config: dict[str, Any]) -> dict[str, Any]:
    """The Qwen-VL config inside a retrieval config (top level or under ``vlm_config``)."""
    inner = config.get("vlm_config")
    source = inner if isinstance(inner, dict) else config
    return {k: v for k, v in source.items() if k not in _NOT_BACKBONE_CONFIG | set(DIM_KEYS)}


def projection_dim(config: dict[str, Any]) -> int | None:
    for key in DIM_KEYS:
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def read_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for path in vision.weight_files(model_dir):
        with safe_open(str(path), "pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a Mapping
                tensors[key] = handle.get_tensor(key)
    return tensors


def map_weight_names(
    tensors: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[str]]:
    """Split into (backbone, projection) state dicts; third item: names left unmapped."""
    backbone: dict[str, torch.Tensor] = {}
    projection: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for name, tensor in tensors.items():
        if name.startswith(IGNORED_PREFIXES):
            continue
        for prefix in BACKBONE_PREFIXES:
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            proj = next((p for p in PROJECTION_NAMES if rest.startswith(p)), None)
            if proj is not None:
                projection[rest[len(proj) :]] = tensor
                break
            if rest.startswith(("visual.", "language_model.")):
                backbone[rest] = tensor
                break
        else:
            unmapped.append(name)
    return backbone, projection, unmapped


class QwenVLRetriever:
    """Shared encoder for Qwen-VL-backbone late-interaction checkpoints.

    Subclasses set ``family`` and ``backbone``. Attention is causal, as in the reference
    classes (colpali-engine); ``bidirectional=True`` swaps in a padding-only mask.
    """

    family = "qwen-vl"
    backbone = QwenBackbone("Qwen3VLConfig", "Qwen3VLModel")

    def __init__(
        self,
        model_dir: Path | str,
        config: dict[str, Any] | None = None,
        *,
        device: str | None = None,
        dtype: torch.dtype | str | None = None,
        batch_size: int = 4,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        bidirectional: bool = False,
        prompts: PromptContract | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        config = vision.read_config(self.model_dir) if config is None else config
        self.name = f"{self.family}:{self.model_dir.name}"
        self.device = vision.resolve_device(device)
        self.dtype = vision.pick_dtype(self.device, dtype)
        self.batch_size = batch_size
        self.bidirectional = bidirectional
        self.prompts = prompts or QWEN_ENGINE
        if "{image}" not in self.prompts.page_template:
            raise EncoderError("page_template must contain {image}")
        self._load_processor(min_pixels, max_pixels)
        self._model, self._proj = self._load_model(config)
        self.dim = int(self._proj.out_features) if self._proj is not None else self._hidden
        self.fingerprint = fingerprint_of(
            {
                "family": self.family,
                "weights": vision.weights_digest(self.model_dir),
                "dim": self.dim,
                "prompts": asdict(self.prompts),
                "bidirectional": bidirectional,
                "pixel_budget": self.pixel_budget,
            }
        )

    # -- loading --------------------------------------------------------------------

    def _backbone(self, config: dict[str, Any]) -> Any:
        import transformers

        config_class: Any = getattr(transformers, self.backbone.config_class)
        model_class: Any = getattr(transformers, self.backbone.model_class)
        try:
            built = config_class(**backbone_config(config))
        except (TypeError, ValueError) as exc:
            raise EncoderError(
                f"{self.model_dir}: not a {self.backbone.config_class}: {exc}"
            ) from exc
        # SDPA: the bidirectional path hands it a boolean 4D mask.
        return vision.build_for_weights(model_class, built, self.dtype)

    def _load_processor(self, min_pixels: int | None, max_pixels: int | None) -> None:
        # Tokenizer + image processor rather than Qwen3VLProcessor: the latter also wants
        # a video processor (torchvision) that page retrieval never uses.
        import transformers

        auto_tokenizer: Any = transformers.AutoTokenizer
        auto_image_processor: Any = transformers.AutoImageProcessor

        try:
            with vision.quiet_transformers():
                self._tokenizer = auto_tokenizer.from_pretrained(str(self.model_dir))
                try:
                    self._images_in = auto_image_processor.from_pretrained(str(self.model_dir))
                except ImportError:
                    # transformers <= 5.17 gates AutoImageProcessor on torchvision; every Qwen
                    # VL generation resizes pages with this class, which has a PIL path.
                    self._images_in = transformers.Qwen2VLImageProcessor.from_pretrained(
                        str(self.model_dir)
                    )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EncoderError(f"cannot load the processor of {self.model_dir}: {exc}") from exc
        size = dict(self._images_in.size)
        size["shortest_edge"] = min_pixels or size["shortest_edge"]
        size["longest_edge"] = max_pixels or size["longest_edge"]
        if size["shortest_edge"] > size["longest_edge"]:
            raise EncoderError("min_pixels must not exceed max_pixels")
        self._images_in.size = size
        for legacy in ("min_pixels", "max_pixels"):
            if getattr(self._images_in, legacy, None) is not None:
                setattr(self._images_in, legacy, None)
        self.pixel_budget = (size["shortest_edge"], size["longest_edge"])

    def _load_model(self, config: dict[str, Any]) -> tuple[Any, torch.nn.Linear | None]:
        backbone_state, proj_state, unmapped = map_weight_names(read_weights(self.model_dir))
        if unmapped:
            vision.check_key_sets(self.model_dir, [], unmapped)
        with vision.quiet_transformers():
            model = self._backbone(config)
        self._hidden = int(model.config.text_config.hidden_size)
        vision.check_key_sets(self.model_dir, model.state_dict().keys(), backbone_state.keys())
        model.load_state_dict(backbone_state, strict=True)
        proj = self._projection(config, proj_state)
        model.to(device=self.device, dtype=self.dtype).eval()
        if proj is not None:
            proj.to(device=self.device, dtype=self.dtype).eval()
        return model, proj

    def _projection(
        self, config: dict[str, Any], state: dict[str, torch.Tensor]
    ) -> torch.nn.Linear | None:
        declared = projection_dim(config)
        if not state:
            if declared is not None and declared != self._hidden:
                raise EncoderError(
                    f"{self.model_dir}: config declares a {declared}-dim projection but the "
                    f"checkpoint has no {' or '.join(PROJECTION_NAMES)} weights"
                )
            return None  # checkpoints that emit the hidden states themselves
        vision.check_key_sets(
            self.model_dir,
            ["weight", "bias"] if "bias" in state else ["weight"],
            state.keys(),
        )
        weight = state["weight"]
        if weight.ndim != 2 or weight.shape[1] != self._hidden:
            raise EncoderError(
                f"{self.model_dir}: projection of shape {tuple(weight.shape)} does not fit "
                f"hidden size {self._hidden}"
            )
        if declared is not None and declared != weight.shape[0]:
            raise EncoderError(
                f"{self.model_dir}: config says dim {declared}, projection gives {weight.shape[0]}"
            )
        proj = torch.nn.Linear(self._hidden, int(weight.shape[0]), bias="bias" in state)
        proj.load_state_dict(state, strict=True)
        return proj

    # -- encoding -------------------------------------------------------------------

    def encode_queries(self, queries: Sequence[str]) -> list[TokenVectors]:
        texts = [self.prompts.query(q) for q in queries]
        return vision.in_batches(texts, self.batch_size, self._texts)

    def encode_pages(self, pages: Sequence[PageContent]) -> list[TokenVectors]:
        return vision.in_batches(
            vision.page_images(pages, self.family), self.batch_size, self._images
        )

    def _texts(self, texts: list[str]) -> list[TokenVectors]:
        return self._run(dict(self._tokenizer(texts, padding=True, return_tensors="pt")))

    def _page_texts(self, grids: torch.Tensor) -> list[str]:
        merge = int(self._images_in.merge_size) ** 2
        texts = []
        for grid in grids:
            # One <|image_pad|> per merged patch: the backbone scatters vision features there.
            span = QWEN_VISION_SPAN.replace(
                "<|image_pad|>", "<|image_pad|>" * (int(grid.prod()) // merge)
            )
            texts.append(self.prompts.page_with_image(span))
        return texts

    def page_layout(self, image: Any) -> tuple[list[int], int, int, int]:
        """How a page image becomes stored tokens, without running the model: the page
        prompt's token ids (one per stored vector), the image token's id, and the
        ``rows x cols`` grid of merged patches its image tokens fill row-major."""
        pixels = self._images_in(images=[image], return_tensors="pt")
        grids = pixels["image_grid_thw"]
        ids = [int(i) for i in self._tokenizer(self._page_texts(grids))["input_ids"][0]]
        _, height, width = (int(v) for v in grids[0])
        merge = int(self._images_in.merge_size)
        image_token = int(self._tokenizer.convert_tokens_to_ids("<|image_pad|>"))
        return ids, image_token, height // merge, width // merge

    def _images(self, images: list[Any]) -> list[TokenVectors]:
        pixels = self._images_in(images=images, return_tensors="pt")
        grids = pixels["image_grid_thw"]
        texts = self._page_texts(grids)
        batch = dict(self._tokenizer(texts, padding=True, return_tensors="pt"))
        # M-RoPE needs to know which positions are image tokens (1) versus text (0).
        image_token = self._tokenizer.convert_tokens_to_ids("<|image_pad|>")
        batch["mm_token_type_ids"] = (batch["input_ids"] == image_token).long()
        batch["pixel_values"] = pixels["pixel_values"]
        batch["image_grid_thw"] = grids
        return self._run(batch)

    def _run(self, batch: Any) -> list[TokenVectors]:
        inputs = {k: v.to(self.device) for k, v in batch.items() if k != "token_type_ids"}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        mask = inputs["attention_mask"]
        hook = None
        if self.bidirectional:
            language_model = self._model.language_model  # type: ignore[union-attr]
            hook = language_model.register_forward_pre_hook(
                self._bidirectional_hook(mask), with_kwargs=True
            )
        try:
            hidden = self._model(**inputs, use_cache=False).last_hidden_state
        finally:
            if hook is not None:
                hook.remove()
        vectors = self._proj(hidden) if self._proj is not None else hidden
        return vision.split_by_mask(vectors, mask)

    def _bidirectional_hook(self, mask: torch.Tensor) -> Any:
        """Swap the causal mask for a padding-only one on the attention layers.

        A 4D mask is used as-is by transformers (no causal triangle added). Padding
        queries may see themselves so SDPA never normalises an all-masked row into NaNs
        that would then leak through the values of later layers.
        """
        keep = mask.bool()
        length = keep.shape[1]
        eye = torch.eye(length, dtype=torch.bool, device=keep.device)
        full = (keep[:, None, None, :] | eye[None, None]).expand(-1, 1, length, length)

        def hook(module: Any, args: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
            kwargs["attention_mask"] = self._attention_masks(full, mask)
            return args, kwargs

        return hook

    def _attention_masks(self, full: torch.Tensor, mask: torch.Tensor) -> Any:
        if not self.backbone.hybrid:
            return full
        # Recurrent layers take the 2D padding mask (None when nothing is padded).
        linear = None if bool(mask.all()) else mask
        return {"full_attention": full, "linear_attention": linear}
