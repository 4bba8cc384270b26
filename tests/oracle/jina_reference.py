"""jina-colbert-v2 checkpoints whose backbone is built, saved and run by transformers.

jinaai/jina-colbert-v2 runs its backbone as remote code from the hub repository
jinaai/xlm-roberta-flash-implementation, which cannot be fetched here and no package
ships. transformers 5.x does ship a port of that backbone, written with Jina AI
(``models/jina_embeddings_v3``): ``JinaEmbeddingsV3Model``. Its ``save_pretrained``
converts its weights back to the remote code's tensor names (``emb_ln``,
``encoder.layers.N.mixer.Wqkv``, ``norm1``, ...) through transformers' own conversion
mapping, and ``from_pretrained`` reads them forward again. So both the checkpoint layout
and the reference forward pass here are transformers', never latestore's.

The sentencepiece tokenizer (with jina-colbert-v2's two marker tokens) is shared with
``tools/pylate_oracle.py``, which runs in the PyLate virtualenv: this module imports
nothing at module level that the two environments do not both have.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tests.encoders.checkpoints import JINA_CODE, PUNCTUATION, TINY, write_json
from tests.encoders.checkpoints import xlmr_tokenizer as shared_xlmr_tokenizer

__all__ = [
    "JINA_MARKERS",
    "reference_available",
    "reference_name",
    "reference_vectors",
    "write_reference_jina_colbert",
    "write_reference_jina_pylate",
    "xlmr_tokenizer",
]

# jina-colbert-v2's markers; PyLate's model card for it passes these and attended expansion.
JINA_MARKERS = ("[QueryMarker]", "[DocumentMarker]")
# Punctuation that sentencepiece also holds with a word-start mark, as XLM-R's vocabulary
# does ("▁(" beside "("): PyLate's skiplist names only the bare piece.
MARKED_PUNCTUATION = ("(", ".", ",", "-", "?")
ROPE_THETA = 20000.0


def xlmr_tokenizer(folder: Path) -> Any:
    """A sentencepiece-style (Unigram + Metaspace) XLM-R tokenizer with Jina's markers,
    and word-start punctuation pieces ("▁(") that PyLate's skiplist must keep."""
    return shared_xlmr_tokenizer(
        folder, added=JINA_MARKERS, extra_pieces=tuple(f"▁{p}" for p in MARKED_PUNCTUATION)
    )


def reference_available() -> bool:
    """Whether this transformers has the port (5.x releases after PyLate's 5.3 pin)."""
    try:
        from transformers import JinaEmbeddingsV3Model  # noqa: F401
    except ImportError:
        return False
    return True


def reference_name() -> str:
    import transformers

    return f"transformers {transformers.__version__} JinaEmbeddingsV3Model"


def _remote_code_config(tokenizer: Any) -> dict[str, Any]:
    """config.json as jina-colbert-v2 ships it: remote code, rotary base as its own key."""
    return {
        "architectures": ["HF_ColBERT"],
        "auto_map": {
            "AutoConfig": f"{JINA_CODE}--configuration_xlm_roberta.XLMRobertaFlashConfig",
            "AutoModel": f"{JINA_CODE}--modeling_xlm_roberta.XLMRobertaModel",
        },
        "model_type": "xlm-roberta",
        "vocab_size": len(tokenizer),
        "position_embedding_type": "rotary",
        "rotary_emb_base": ROPE_THETA,
        "max_position_embeddings": 8194,
        "type_vocab_size": 1,
        "pad_token_id": tokenizer.pad_token_id,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
        "use_flash_attn": True,
        **TINY,
    }


def _reference_backbone(folder: Path, tokenizer: Any, seed: int) -> dict[str, torch.Tensor]:
    """Build and save the port's backbone at ``<folder>-reference``; its saved tensors."""
    from safetensors.torch import load_file
    from transformers import JinaEmbeddingsV3Config, JinaEmbeddingsV3Model

    config = JinaEmbeddingsV3Config(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA},
        **TINY,
    )
    torch.manual_seed(seed)
    model = JinaEmbeddingsV3Model(config, add_pooling_layer=True)
    with torch.no_grad():  # default init leaves LayerNorms the identity
        for name, parameter in model.named_parameters():
            parameter.normal_(std=0.2)
            if "layernorm" in name.lower() and name.endswith("weight"):
                parameter.add_(1.0)
    reference = _reference_dir(folder)
    model.save_pretrained(str(reference))
    return dict(load_file(reference / "model.safetensors"))


def _reference_dir(folder: Path) -> Path:
    return folder.parent / f"{folder.name}-reference"


def _config(folder: Path, tokenizer: Any, config_style: str) -> dict[str, Any]:
    if config_style == "remote-code":
        return _remote_code_config(tokenizer)
    if config_style == "transformers":
        saved: dict[str, Any] = json.loads((_reference_dir(folder) / "config.json").read_text())
        return saved
    raise ValueError(f"unknown config style {config_style!r}")


def write_reference_jina_colbert(
    folder: Path,
    *,
    tokenizer_dir: Path,
    linear: torch.Tensor,
    query_length: int,
    document_length: int,
    config_style: str = "remote-code",
    seed: int = 0,
) -> Path:
    """A jina-colbert-v2-layout folder whose backbone transformers' port built and saved.

    ``roberta.*`` backbone tensors plus ``linear.weight`` in one safetensors file and an
    ``artifact.metadata``, as the published checkpoint. ``config_style`` picks the
    config.json: ``"remote-code"`` as jina-colbert-v2 ships it, or ``"transformers"``,
    the port's own (``model_type`` ``jina_embeddings_v3``, ``rope_parameters``). The
    port's own save is kept beside it (``<folder>-reference``) for
    :func:`reference_vectors`.
    """
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    backbone = _reference_backbone(folder, tokenizer, seed)
    tensors = {f"roberta.{k}": v for k, v in backbone.items()}
    tensors["linear.weight"] = linear.detach().float().contiguous()
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(str(folder))
    config = _config(folder, tokenizer, config_style) | {"architectures": ["HF_ColBERT"]}
    write_json(folder / "config.json", config)
    write_json(
        folder / "artifact.metadata",
        {
            "query_token_id": JINA_MARKERS[0],
            "doc_token_id": JINA_MARKERS[1],
            "query_maxlen": query_length,
            "doc_maxlen": document_length,
            "attend_to_mask_tokens": True,
            "mask_punctuation": True,
        },
    )
    return folder


def write_reference_jina_pylate(
    folder: Path,
    *,
    tokenizer_dir: Path,
    linear: torch.Tensor,
    query_length: int,
    document_length: int,
    config_style: str = "remote-code",
    seed: int = 0,
) -> Path:
    """The same backbone in PyLate's sentence-transformers layout (root + ``1_Dense/``).

    What ``ColBERT.save`` writes for jina-colbert-v2 loaded with its remote code (or, with
    ``config_style="transformers"``, with the port): the backbone's own save at the root,
    the projection as a bias-free ``Dense`` and PyLate's prompt settings.
    """
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    backbone = _reference_backbone(folder, tokenizer, seed)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(backbone, str(folder / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(str(folder))
    config = _config(folder, tokenizer, config_style)
    if config_style == "remote-code":
        config["architectures"] = ["XLMRobertaModel"]
    write_json(folder / "config.json", config)
    write_json(
        folder / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
        ],
    )
    out_features, in_features = linear.shape
    write_json(
        folder / "1_Dense" / "config.json",
        {
            "in_features": in_features,
            "out_features": out_features,
            "bias": False,
            "activation_function": "torch.nn.modules.linear.Identity",
            "use_residual": False,
        },
    )
    save_file(
        {"linear.weight": linear.detach().float().contiguous()},
        str(folder / "1_Dense" / "model.safetensors"),
        metadata={"format": "pt"},
    )
    write_json(
        folder / "config_sentence_transformers.json",
        {
            "model_type": "ColBERT",
            "query_prefix": JINA_MARKERS[0],
            "document_prefix": JINA_MARKERS[1],
            "query_length": query_length,
            "document_length": document_length,
            "attend_to_expansion_tokens": True,
            "do_query_expansion": True,
            "skiplist_words": PUNCTUATION,
            "similarity_fn_name": "MaxSim",
        },
    )
    return folder


def reference_vectors(
    folder: Path,
    linear: torch.Tensor,
    ids: np.ndarray,
    mask: np.ndarray,
    keep: np.ndarray,
) -> list[np.ndarray]:
    """Normalised projected token vectors of the kept positions, one array per row.

    The backbone is the port reloaded with ``from_pretrained`` from its own save; the
    head is what PyLate's ``Dense`` and ``ColBERT.encode`` apply (a bias-free linear
    layer, then L2 normalisation of the kept rows).
    """
    from transformers import JinaEmbeddingsV3Model

    model = JinaEmbeddingsV3Model.from_pretrained(
        str(_reference_dir(folder)), local_files_only=True
    ).eval()
    with torch.inference_mode():
        hidden = model(
            input_ids=torch.from_numpy(ids).long(),
            attention_mask=torch.from_numpy(mask).long(),
        ).last_hidden_state
        vectors = torch.nn.functional.normalize(hidden @ linear.float().T, dim=-1)
    rows: Sequence[torch.Tensor] = [vectors[i][torch.from_numpy(keep[i])] for i in range(len(ids))]
    return [np.ascontiguousarray(row.numpy(), dtype=np.float32) for row in rows]
