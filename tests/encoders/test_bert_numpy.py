"""The numpy MiniLM (queries while torch is not loaded) equals the torch one to float32
rounding, and a process that only searches never imports torch for it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from latestore.encoders.text.bert_lite import LiteBert
from latestore.encoders.text.bert_numpy import NumpyBert
from latestore.encoders.text.minilm import NUMPY_QUERY_BATCH, MiniLMEncoder, bundled_model_dir
from latestore.index.devices import gpu_nodes_present

QUERIES = [
    "wing slipstream",
    "What similarity laws must be obeyed when constructing aeroelastic models?",
    "Ünïcödé façade — naïve café; 北京 🚀",
    "x",
    "",
    "ColBERT's MaxSim: sum over query tokens of max similarity; " * 12,  # truncated at 64
]


def test_hidden_states_match_the_torch_network() -> None:
    model_dir = bundled_model_dir()
    numpy_bert = NumpyBert.load(model_dir)
    torch_bert = LiteBert.load(model_dir)
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 20000, size=(3, 40), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, 25:] = 0  # a padded row: padding must not reach the real tokens
    got = numpy_bert(ids, mask)
    with torch.inference_mode():
        want = torch_bert(torch.from_numpy(ids), torch.from_numpy(mask)).last_hidden_state
    want_np = want.numpy()
    np.testing.assert_allclose(got[0], want_np[0], atol=2e-5, rtol=0)
    np.testing.assert_allclose(got[1, :25], want_np[1, :25], atol=2e-5, rtol=0)
    assert got.dtype == np.float32


def test_query_vectors_match_the_torch_path(minilm: MiniLMEncoder) -> None:
    # In this process torch is loaded: encode_queries takes torch; the numpy path is
    # called directly, as a torch-free process would take it.
    want = minilm.encode_queries(QUERIES)
    got = minilm._encode_numpy(QUERIES, minilm.query_max_tokens)
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape and a.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def _fresh_interpreter(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a process that has imported nothing yet; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.skipif(gpu_nodes_present(), reason="a GPU machine imports torch to find it")
def test_numpy_queries_only_in_a_one_shot_process_without_torch(
    minilm: MiniLMEncoder,
) -> None:
    assert not minilm._numpy_queries(1)  # torch is loaded here
    child = (
        "import sys\n"
        "from latestore.encoders.text.minilm import MiniLMEncoder\n"
        "from latestore.torch_use import declare_one_shot_process\n"
        "declare_one_shot_process()\n"
        "e = MiniLMEncoder()\n"
        f"vectors = e.encode_queries(['wing slipstream'] * {NUMPY_QUERY_BATCH})\n"
        "print(len(vectors), vectors[0].shape, 'torch' in sys.modules)\n"
        f"e.encode_queries(['wing slipstream'] * {NUMPY_QUERY_BATCH + 1})\n"
        "print('torch' in sys.modules)\n"
    )
    done = _fresh_interpreter(child)
    small, large = done.stdout.splitlines()
    assert small == f"{NUMPY_QUERY_BATCH} (5, 384) False"
    assert large == "True"  # a large batch is worth torch's import
    # A process that did not declare itself one-shot (a server, a notebook) takes
    # torch from its first query: its kernels are faster for every query after it.
    steady = (
        "import sys\n"
        "from latestore.encoders.text.minilm import MiniLMEncoder\n"
        "MiniLMEncoder().encode_queries(['wing slipstream'])\n"
        "print('torch' in sys.modules)\n"
    )
    done = _fresh_interpreter(steady)
    assert done.stdout.strip() == "True"


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_other_precisions_keep_the_torch_path(dtype: str) -> None:
    encoder = MiniLMEncoder(dtype=dtype)
    assert not encoder._numpy_queries(1)
    assert encoder.dtype == getattr(torch, dtype)
