"""Reference vectors from PyLate 1.6.0, computed in its own virtualenv (``make oracle``).

PyLate pins transformers and sentence-transformers versions that latestore does not
use, so it runs apart: this script builds tiny random checkpoints *with PyLate* (or,
for the Stanford ``HF_ColBERT`` layout, loads one with PyLate's own converter), encodes
the oracle's queries and documents with ``ColBERT.encode`` and writes, per case,
the checkpoint, ``reference.npz``, ``tokens.npz`` (the input ids, attention masks and
kept positions PyLate fed its model) and ``case.json`` under the output folder.
``tests/oracle/test_pylate_oracle.py`` then loads each checkpoint through latestore's
registry in the main virtualenv and compares.

Usage: ``python tools/pylate_oracle.py OUT_DIR`` (run from the repository root).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.encoders.checkpoints import (
    PUNCTUATION,
    TINY,
    bert_tokenizer,
    modernbert_tokenizer,
    tiny_modernbert_config,
    write_hf_colbert,
)
from tests.oracle.jina_reference import JINA_MARKERS, xlmr_tokenizer
from tests.oracle.texts import DOCUMENTS, QUERIES

DIM = 16


def _bert_base(folder: Path) -> Path:
    from transformers import BertConfig, BertModel

    tokenizer = bert_tokenizer(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=64, **TINY)
    BertModel(config).save_pretrained(str(folder))
    return folder


def _modernbert_base(folder: Path) -> Path:
    from transformers import ModernBertModel

    tokenizer = modernbert_tokenizer(folder, added=())
    torch.manual_seed(0)
    ModernBertModel(tiny_modernbert_config(tokenizer)).save_pretrained(str(folder))
    return folder


def _xlmr_base(folder: Path) -> Path:
    """A plain (absolute-position) XLM-RoBERTa: what PyLate 1.6.0 can run of Jina's setup."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    tokenizer = xlmr_tokenizer(folder)
    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=66,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=tokenizer.pad_token_id,
        **TINY,
    )
    XLMRobertaModel(config).save_pretrained(str(folder))
    return folder


def _pylate_built(base: Callable[[Path], Path], **settings: Any) -> Callable[[Path], Any]:
    """A PyLate ColBERT over a tiny base model, saved by PyLate into ``<out>/model``."""

    def build(out: Path) -> Any:
        from pylate import models

        torch.manual_seed(0)
        model = models.ColBERT(
            model_name_or_path=str(base(out / "base")),
            embedding_size=DIM,
            query_length=12,
            document_length=40,
            skiplist_words=PUNCTUATION,
            device="cpu",
            **settings,
        )
        model.save(str(out / "model"))
        return models.ColBERT(model_name_or_path=str(out / "model"), device="cpu")

    return build


def _stanford(out: Path) -> Any:
    """The colbert-ir layout, read by PyLate's own loader (its reference conversion)."""
    from pylate import models

    write_hf_colbert(out / "model", dim=DIM)
    return models.ColBERT(model_name_or_path=str(out / "model"), device="cpu")


CASES: dict[str, Callable[[Path], Any]] = {
    "colbert-bert-pylate": _pylate_built(_bert_base),
    "colbert-hf_colbert": _stanford,
    "colbert-modernbert-pylate": _pylate_built(_modernbert_base),
    # jina-colbert-v2's PyLate settings (markers, attended expansion) over XLM-RoBERTa.
    "colbert-xlmr-jina-settings-pylate": _pylate_built(
        _xlmr_base,
        query_prefix=JINA_MARKERS[0],
        document_prefix=JINA_MARKERS[1],
        attend_to_expansion_tokens=True,
    ),
}


def _token_features(model: Any, texts: list[str], *, is_query: bool) -> dict[str, np.ndarray]:
    """What ``ColBERT.encode`` feeds the model for one batch, and which rows it keeps."""
    features = model.tokenize(texts, is_query=is_query)
    ids, attention = features["input_ids"], features["attention_mask"]
    if not is_query:
        keep = model.skiplist_mask(input_ids=ids, skiplist=model.skiplist) & attention.bool()
    elif model.do_query_expansion:
        keep = torch.ones_like(ids, dtype=torch.bool)
    else:
        keep = attention.bool()
    side = "q" if is_query else "d"
    return {
        f"{side}_ids": ids.numpy(),
        f"{side}_mask": attention.numpy(),
        f"{side}_keep": keep.numpy(),
    }


def main(out_dir: Path) -> None:
    import pylate

    for name, build in CASES.items():
        case = out_dir / name
        case.mkdir(parents=True, exist_ok=True)
        model = build(case)
        queries = model.encode(QUERIES, is_query=True, convert_to_numpy=True)
        documents = model.encode(DOCUMENTS, is_query=False, convert_to_numpy=True)
        arrays = {f"q{i}": np.asarray(v, dtype=np.float32) for i, v in enumerate(queries)}
        arrays |= {f"d{i}": np.asarray(v, dtype=np.float32) for i, v in enumerate(documents)}
        np.savez(case / "reference.npz", **arrays)
        np.savez(
            case / "tokens.npz",
            **_token_features(model, QUERIES, is_query=True),
            **_token_features(model, DOCUMENTS, is_query=False),
        )
        (case / "case.json").write_text(
            json.dumps(
                {
                    "family": name,
                    "reference": f"PyLate {pylate.__version__}",
                    "queries": len(QUERIES),
                    "documents": len(DOCUMENTS),
                },
                indent=2,
            )
            + "\n"
        )
        print(f"{name}: {len(queries)} queries, {len(documents)} documents")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python tools/pylate_oracle.py OUT_DIR")
    main(Path(sys.argv[1]))
