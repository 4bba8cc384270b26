"""The shared encoder toolkit: one checkpoint reader, one dtype policy, one prompt source."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from latestore.encoders.checkpoint import weight_files
from latestore.encoders.device import pick_dtype
from latestore.encoders.prompts import PROMPT_PRESETS, QWEN_ENGINE
from latestore.encoders.registry import load_encoder
from latestore.encoders.remote import PROMPT_PRESETS as REMOTE_PRESETS
from latestore.encoders.text import colbert_model as colbert_text
from latestore.encoders.vision import common as vision_common
from latestore.errors import EncoderError
from tests.encoders.vision_checkpoints import build_colqwen3


def _shard(model_dir: Path, out: Path) -> Path:
    """The same checkpoint split into two shards behind a safetensors index."""
    shutil.copytree(model_dir, out)
    state = load_file(str(out / "model.safetensors"))
    (out / "model.safetensors").unlink()
    names = sorted(state)
    halves = {"model-00001-of-00002.safetensors": names[::2]}
    halves["model-00002-of-00002.safetensors"] = names[1::2]
    weight_map = {}
    for file, keys in halves.items():
        save_file({k: state[k] for k in keys}, str(out / file), metadata={"format": "pt"})
        weight_map |= dict.fromkeys(keys, file)
    index = {"metadata": {}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index))
    # A stray file beside the shards must not be read (the index rules).
    save_file({"junk": torch.zeros(1)}, str(out / "stray.safetensors"))
    return out


def test_sharded_vision_checkpoint_loads_like_the_single_file(tmp_path: Path) -> None:
    single = build_colqwen3(tmp_path / "single")
    sharded = _shard(single, tmp_path / "sharded")
    assert [p.name for p in weight_files(sharded)] == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    one = load_encoder(single).encode_queries(["sharded weights"])[0]
    two = load_encoder(sharded).encode_queries(["sharded weights"])[0]
    np.testing.assert_array_equal(one, two)


def test_shard_index_naming_an_absent_file_is_refused(tmp_path: Path) -> None:
    sharded = _shard(build_colqwen3(tmp_path / "single"), tmp_path / "sharded")
    (sharded / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(EncoderError, match="absent"):
        load_encoder(sharded)


def test_one_dtype_policy() -> None:
    assert vision_common.pick_dtype is pick_dtype
    assert colbert_text.resolve_dtype is pick_dtype
    assert pick_dtype("cpu") is torch.float32
    assert pick_dtype("cpu", "auto") is torch.float32
    assert pick_dtype("cpu", "bfloat16") is torch.bfloat16
    assert pick_dtype("cuda:0", torch.float16) is torch.float16
    with pytest.raises(EncoderError, match="unknown dtype"):
        pick_dtype("cpu", "float13")


def test_local_and_served_prompts_share_one_source() -> None:
    assert REMOTE_PRESETS is PROMPT_PRESETS
    assert PROMPT_PRESETS["colqwen3"] is QWEN_ENGINE
    assert PROMPT_PRESETS["colqwen3.5"] is QWEN_ENGINE
    assert QWEN_ENGINE.query("q") == "q" + "<|endoftext|>" * 10
