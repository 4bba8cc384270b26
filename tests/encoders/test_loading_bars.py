"""Loading a checkpoint from Python draws no transformers "Loading weights" bar unless
LATESTORE_VERBOSE=1 asks for it (issue 23: a bar was printed by every process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.encoders.vision_checkpoints import build_colqwen2

_LOAD = (
    "import sys\n"
    "from transformers.utils import logging\n"
    "from latestore.encoders.registry import load_encoder\n"
    "load_encoder(sys.argv[1])\n"
    "print('bars on after:', logging.is_progress_bar_enabled())\n"
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A tiny ColQwen2: the vision families load through transformers' from_pretrained.
    return build_colqwen2(tmp_path_factory.mktemp("bars") / "colqwen2")


def load_in_child(folder: Path, verbose: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "LATESTORE_VERBOSE")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if verbose:
        env["LATESTORE_VERBOSE"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _LOAD, str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_a_python_load_draws_no_bar_and_restores_the_switch(model_dir: Path) -> None:
    quiet = load_in_child(model_dir, verbose=False)
    assert "Loading weights" not in quiet.stderr, quiet.stderr
    assert "bars on after: True" in quiet.stdout  # the caller's setting is put back


def test_latestore_verbose_shows_the_bar(model_dir: Path) -> None:
    # The bar exists: without this the quiet test could pass on a loader with none.
    loud = load_in_child(model_dir, verbose=True)
    assert "Loading weights" in loud.stderr, loud.stderr
