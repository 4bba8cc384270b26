"""Tiny random-weight checkpoints in each family's real on-disk layout.

Model hubs are unreachable in tests, so every family is proven on folders written here
with the published file names and tensor names (hidden 32, 2 layers) and loaded back by
directory through the registry. Tokenizers are built locally (tokenizers library) and
saved with transformers, as the real checkpoints ship them.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any, cast

import torch
from safetensors.torch import load_file, save_file

TINY: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}

WORDS = [
    "hello", "world", "the", "cat", "sat", "on", "mat", "a", "dog", "ran", "page",
    "query", "late", "interaction", "search", "store", "vector", "token", "is", "what",
]  # fmt: skip

PUNCTUATION = list(string.punctuation)
JINA_CODE = "jinaai/xlm-roberta-flash-implementation"


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """safetensors for ``.safetensors``, a torch state dict otherwise (``.bin``, ``.pt``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    if path.suffix == ".safetensors":
        save_file(plain, str(path), metadata={"format": "pt"})
    else:
        torch.save(plain, str(path))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return load_file(str(path))
    loaded: dict[str, torch.Tensor] = torch.load(str(path), weights_only=True)
    return loaded


def rename_tensor(path: Path, old: str, new: str) -> None:
    """Rewrite a weight file with one tensor renamed (a misnamed-weight checkpoint)."""
    tensors = load_tensors(path)
    tensors[new] = tensors.pop(old)
    save_tensors(path, tensors)


def drop_tensor(path: Path, name: str) -> None:
    tensors = load_tensors(path)
    del tensors[name]
    save_tensors(path, tensors)


# -- tokenizers ------------------------------------------------------------------------


def bert_tokenizer(folder: Path, extra: tuple[str, ...] = ()) -> Any:
    """A WordPiece BERT tokenizer with ``[unused0]``/``[unused1]`` (ColBERT's markers)."""
    from transformers import BertTokenizer

    vocab = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += PUNCTUATION + WORDS + ["##s", "##ed", *extra]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab=str(folder / "vocab.txt"))
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def xlmr_tokenizer(
    folder: Path, added: tuple[str, ...] = (), extra_pieces: tuple[str, ...] = ()
) -> Any:
    """A sentencepiece-style (Unigram + Metaspace) XLM-RoBERTa tokenizer; ``added``
    become special tokens, ``extra_pieces`` ordinary vocabulary entries."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import XLMRobertaTokenizer

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    pieces = [f"▁{w}" for w in WORDS] + ["▁", "s", "ed", *PUNCTUATION, *extra_pieces]
    vocab = [(t, 0.0) for t in specials] + [(p, -1.0 - i / 100) for i, p in enumerate(pieces)]
    vocab.append(("<mask>", 0.0))
    model = Tokenizer(models.Unigram(vocab, unk_id=3))
    model.pre_tokenizer = pre_tokenizers.Metaspace()
    model.decoder = decoders.Metaspace()
    model.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    tokenizer = XLMRobertaTokenizer(
        tokenizer_object=model,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
    if added:
        tokenizer.add_tokens(list(added), special_tokens=True)
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def modernbert_tokenizer(folder: Path, added: tuple[str, ...] = ("[Q] ", "[D] ")) -> Any:
    """A fast tokenizer with ModernBERT's BERT-style specials and PyLate's prefix tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials + PUNCTUATION + WORDS)}
    model = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    model.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    model.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer = cast(Any, PreTrainedTokenizerFast)(
        tokenizer_object=model,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
    )
    tokenizer.add_tokens(list(added))
    tokenizer.save_pretrained(str(folder))
    return tokenizer


# -- checkpoints -----------------------------------------------------------------------


def _seeded(seed: int) -> None:
    torch.manual_seed(seed)


def write_hf_colbert(folder: Path, *, dim: int = 16, seed: int = 0) -> Path:
    """colbert-ir/colbertv2.0 layout: ``bert.*`` + ``linear.weight`` in model.safetensors."""
    from transformers import BertConfig, BertModel

    _seeded(seed)
    tokenizer = bert_tokenizer(folder)
    config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=64, **TINY)
    config.architectures = ["HF_ColBERT"]
    bert = BertModel(config, add_pooling_layer=True)
    tensors = {f"bert.{k}": v for k, v in bert.state_dict().items()}
    tensors["linear.weight"] = torch.randn(dim, config.hidden_size) * 0.1
    save_tensors(folder / "model.safetensors", tensors)
    config.save_pretrained(str(folder))
    write_json(
        folder / "artifact.metadata",
        {
            "query_token_id": "[unused0]",
            "doc_token_id": "[unused1]",
            "query_maxlen": 12,
            "doc_maxlen": 40,
            "dim": dim,
            "mask_punctuation": True,
            "attend_to_mask_tokens": False,
            "similarity": "cosine",
        },
    )
    return folder


def write_jina_colbert(
    folder: Path, *, dim: int = 16, projection: str = "linear", extra_pieces: tuple[str, ...] = ()
) -> Path:
    """jinaai/jina-colbert-v2 layout: rotary flash XLM-RoBERTa under ``roberta.``;
    ``extra_pieces`` join the vocabulary (``"▁("``: a word-start symbol, as XLM-R has)."""
    from latestore.encoders.text.jina import JinaXLMRobertaConfig, JinaXLMRobertaModel

    _seeded(1)
    tokenizer = xlmr_tokenizer(
        folder, added=("[QueryMarker]", "[DocumentMarker]"), extra_pieces=extra_pieces
    )
    config = {
        "architectures": ["HF_ColBERT"],
        "auto_map": {
            "AutoConfig": f"{JINA_CODE}--configuration_xlm_roberta.XLMRobertaFlashConfig",
            "AutoModel": f"{JINA_CODE}--modeling_xlm_roberta.XLMRobertaModel",
        },
        "model_type": "xlm-roberta",
        "vocab_size": len(tokenizer),
        "position_embedding_type": "rotary",
        "rotary_emb_base": 20000.0,
        "max_position_embeddings": 8194,
        "type_vocab_size": 1,
        "pad_token_id": 1,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
        "use_flash_attn": True,
        **TINY,
    }
    model = JinaXLMRobertaModel(JinaXLMRobertaConfig.from_dict(config), with_pooler=True)
    for parameter in model.parameters():  # default init leaves LayerNorms trivial
        torch.nn.init.normal_(parameter, std=0.2)
    tensors = {f"roberta.{k}": v for k, v in model.state_dict().items()}
    tensors[f"{projection}.weight"] = torch.randn(dim, 32) * 0.1
    save_tensors(folder / "model.safetensors", tensors)
    write_json(folder / "config.json", config)
    write_json(
        folder / "artifact.metadata",
        {
            "query_token_id": "[QueryMarker]",
            "doc_token_id": "[DocumentMarker]",
            "query_maxlen": 10,
            "doc_maxlen": 60,
            "attend_to_mask_tokens": True,
            "mask_punctuation": True,
        },
    )
    return folder


def tiny_modernbert_config(tokenizer: Any) -> Any:
    """A TINY ModernBERT whose special-token ids are the tokenizer's."""
    from transformers import ModernBertConfig

    return ModernBertConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        max_position_embeddings=128,
        local_attention=16,
        **TINY,
    )


def write_pylate_modernbert(folder: Path, *, dim: int = 16) -> Path:
    """lightonai/GTE-ModernColBERT-v1 layout: sentence-transformers root + ``1_Dense/``."""
    from transformers import ModernBertModel

    _seeded(2)
    tokenizer = modernbert_tokenizer(folder)
    config = tiny_modernbert_config(tokenizer)
    config.architectures = ["ModernBertModel"]
    model = ModernBertModel(config)
    save_tensors(folder / "model.safetensors", dict(model.state_dict()))
    config.save_pretrained(str(folder))
    write_json(
        folder / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
        ],
    )
    write_json(folder / "sentence_bert_config.json", {"max_seq_length": 63, "do_lower_case": False})
    write_json(
        folder / "1_Dense" / "config.json",
        {
            "in_features": 32,
            "out_features": dim,
            "bias": False,
            "activation_function": "torch.nn.modules.linear.Identity",
            "use_residual": False,
        },
    )
    save_tensors(
        folder / "1_Dense" / "model.safetensors", {"linear.weight": torch.randn(dim, 32) * 0.1}
    )
    write_json(
        folder / "config_sentence_transformers.json",
        {
            "model_type": "ColBERT",
            "query_prefix": "[Q] ",
            "document_prefix": "[D] ",
            "query_length": 12,
            "document_length": 40,
            "attend_to_expansion_tokens": False,
            "do_query_expansion": True,
            "skiplist_words": PUNCTUATION,
            "similarity_fn_name": "MaxSim",
        },
    )
    return folder


def write_bge_m3(folder: Path, *, seed: int = 3) -> Path:
    """BAAI/bge-m3 layout: XLM-RoBERTa ``pytorch_model.bin`` + ``colbert_linear.pt``."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    _seeded(seed)
    tokenizer = xlmr_tokenizer(folder)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer), max_position_embeddings=80, pad_token_id=1, **TINY
    )
    config.architectures = ["XLMRobertaModel"]
    model = XLMRobertaModel(config, add_pooling_layer=True)
    save_tensors(folder / "pytorch_model.bin", dict(model.state_dict()))
    config.save_pretrained(str(folder))
    head = torch.nn.Linear(32, 32)
    save_tensors(folder / "colbert_linear.pt", dict(head.state_dict()))
    save_tensors(folder / "sparse_linear.pt", dict(torch.nn.Linear(32, 1).state_dict()))
    write_json(
        folder / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ],
    )
    write_json(
        folder / "1_Pooling" / "config.json",
        {"word_embedding_dimension": 32, "pooling_mode_cls_token": True},
    )
    return folder
