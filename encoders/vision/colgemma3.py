"""ColGemma3 checkpoints as colpali-engine saves them.

colpali-engine's ``ColGemma3`` is a transformers ``Gemma3Model`` (SigLIP tower + Gemma 3
decoder) plus ``custom_text_proj``; its directories say ``model_type: gemma3`` and
``architectures: ["ColGemma3"]`` and keep ``Gemma3Model``'s own weight names
(``language_model.*``, ``vision_tower.*``, ``multi_modal_projector.*``) beside the
projection. So the backbone loads with ``Gemma3Model.from_pretrained`` (strictly: only
the projection may be left over) and the projection by hand.

The prompt contract is colpali-engine's ``ColGemmaProcessor3``: the checkpoint's chat
template around one user turn, ``Query: `` + the query (no augmentation tokens), or the
page image and ``Describe this image``
(:data:`~latestore.encoders.prompts.COLGEMMA3_ENGINE`). Image tokens attend to each
other in both directions (Gemma 3's token types); text is causal, as in the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from latestore.encoders.base import PageContent, TokenVectors, fingerprint_of
from latestore.encoders.prompts import COLGEMMA3_ENGINE, PromptContract
from latestore.encoders.registry import register
from latestore.encoders.vision import common as vision
from latestore.errors import EncoderError

__all__ = ["ColGemma3Encoder", "detect", "load"]

_PROJECTION_PREFIXES = ("custom_text_proj.", "base_model.model.custom_text_proj.")


def detect(model_dir: Path, config: dict[str, Any]) -> bool:
    return "ColGemma3" in vision.architectures(config)


@register("colgemma3", detect=detect)
def load(model_dir: Path, **options: Any) -> ColGemma3Encoder:
    return ColGemma3Encoder(model_dir, **options)


def _projection_tensors(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    found: dict[str, torch.Tensor] = {}
    for path in vision.weight_files(model_dir):
        if path.suffix != ".safetensors":
            raise EncoderError(f"{path}: ColGemma3 weights are read from safetensors only")
        with safe_open(str(path), "pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a Mapping
                prefix = next((p for p in _PROJECTION_PREFIXES if name.startswith(p)), None)
                if prefix is not None:
                    found[name[len(prefix) :]] = handle.get_tensor(name)
    return found


class ColGemma3Encoder:
    """Page-image and query vectors from a colpali-engine ColGemma3 checkpoint.

    Parameters
    ----------
    model_dir:
        Directory with config.json (Gemma 3), safetensors weights, tokenizer (with its
        chat template) and preprocessor files.
    device, dtype:
        CUDA with bf16 when present, else CPU with fp32.
    prompts:
        Override the prompt contract (default: colpali-engine's).
    """

    family = "colgemma3"

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
        config = vision.read_config(self.model_dir)
        if not detect(self.model_dir, config):
            raise EncoderError(f"{self.model_dir} is not a colpali-engine ColGemma3 checkpoint")
        self.prompts = prompts or COLGEMMA3_ENGINE
        self.name = f"colgemma3:{self.model_dir.name}"
        self.device = vision.resolve_device(device)
        self.dtype = vision.pick_dtype(self.device, dtype)
        self.batch_size = batch_size
        self._processor = self._load_processor(config)
        self._model, self._proj = self._load_model()
        self.dim = int(self._proj.out_features)
        self.fingerprint = fingerprint_of(
            {
                "family": self.family,
                "weights": vision.weights_digest(self.model_dir),
                "dim": self.dim,
                "prompts": asdict(self.prompts),
                "chat_template": self._processor.tokenizer.chat_template,
                "image_size": dict(self._processor.image_processor.size),
            }
        )

    def _load_processor(self, config: dict[str, Any]) -> Any:
        import transformers

        auto_tokenizer: Any = transformers.AutoTokenizer
        auto_image_processor: Any = transformers.AutoImageProcessor
        gemma3_processor: Any = transformers.Gemma3Processor
        try:
            with vision.quiet_transformers():
                tokenizer = auto_tokenizer.from_pretrained(str(self.model_dir))
                processor = gemma3_processor(
                    image_processor=auto_image_processor.from_pretrained(str(self.model_dir)),
                    tokenizer=tokenizer,
                    chat_template=tokenizer.chat_template,
                    image_seq_length=int(config.get("mm_tokens_per_image", 256)),
                )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EncoderError(f"cannot load the processor of {self.model_dir}: {exc}") from exc
        if not tokenizer.chat_template:
            raise EncoderError(f"{self.model_dir}: the tokenizer has no chat template")
        # The reference pads on the left; kept so a batch is tokenized the same way.
        tokenizer.padding_side = "left"
        return processor

    def _load_model(self) -> tuple[Any, torch.nn.Linear]:
        from transformers import Gemma3Model

        model_class: Any = Gemma3Model
        try:
            with vision.quiet_transformers():
                model, info = model_class.from_pretrained(
                    str(self.model_dir), dtype=self.dtype, output_loading_info=True
                )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise EncoderError(f"cannot load {self.model_dir}: {exc}") from exc
        info = dict(info)
        info["unexpected_keys"] = [
            k for k in info.get("unexpected_keys") or [] if not k.startswith(_PROJECTION_PREFIXES)
        ]
        vision.check_loading_info(self.model_dir, info)
        state = _projection_tensors(self.model_dir)
        hidden = int(model.config.text_config.hidden_size)
        weight = state.get("weight")
        if weight is None or weight.ndim != 2 or weight.shape[1] != hidden:
            raise EncoderError(
                f"{self.model_dir}: no custom_text_proj weight of shape (dim, {hidden}); "
                "not a colpali-engine ColGemma3 checkpoint"
            )
        vision.check_key_sets(
            self.model_dir, ["weight", "bias"] if "bias" in state else ["weight"], state.keys()
        )
        proj = torch.nn.Linear(hidden, int(weight.shape[0]), bias="bias" in state)
        proj.load_state_dict(state, strict=True)
        proj.to(device=self.device, dtype=self.dtype).eval()
        return model.to(self.device).eval(), proj

    def encode_queries(self, queries: Sequence[str]) -> list[TokenVectors]:
        return vision.in_batches(list(queries), self.batch_size, self._texts)

    def encode_pages(self, pages: Sequence[PageContent]) -> list[TokenVectors]:
        return vision.in_batches(
            vision.page_images(pages, self.family), self.batch_size, self._images
        )

    def _chat(self, content: list[dict[str, Any]]) -> str:
        message = [{"role": "user", "content": content}]
        text: str = self._processor.tokenizer.apply_chat_template(
            message, tokenize=False, add_generation_prompt=False
        )
        return text

    def _texts(self, texts: list[str]) -> list[TokenVectors]:
        prompts = [self._chat([{"type": "text", "text": self.prompts.query(t)}]) for t in texts]
        return self._run(self._processor(text=prompts, padding="longest", return_tensors="pt"))

    def page_layout(self, image: Any) -> tuple[list[int], int, int, int]:
        """How a page image becomes stored tokens, without running the model: the page
        prompt's token ids (one per stored vector), the image token's id, and the square
        grid its image tokens fill row-major (SigLIP's patches average-pooled to
        ``mm_tokens_per_image``)."""
        batch = self._processor(text=[self._page_prompt()], images=[[image]], return_tensors="pt")
        ids = [int(i) for i in batch["input_ids"][0]]
        image_token = int(self._processor.image_token_id)
        side = round(sum(1 for i in ids if i == image_token) ** 0.5)
        return ids, image_token, side, side

    def _page_prompt(self) -> str:
        return self._chat([{"type": "image"}, {"type": "text", "text": self.prompts.image_prompt}])

    def _images(self, images: list[Any]) -> list[TokenVectors]:
        page = self._page_prompt()
        batch = self._processor(
            text=[page] * len(images),
            images=[[image] for image in images],
            padding="longest",
            return_tensors="pt",
        )
        return self._run(batch)

    def _run(self, batch: Any) -> list[TokenVectors]:
        inputs = {k: v.to(self.device) for k, v in batch.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        hidden = self._model(**inputs, use_cache=False).last_hidden_state
        return vision.split_by_mask(self._proj(hidden), inputs["attention_mask"])
