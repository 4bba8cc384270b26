"""The CLI and `serve` with models named by hub id, from a hub-layout cache, offline.

Separate processes, as a user runs them: HF_HUB_CACHE points at a cache written in the
hub's own layout from the suite's tiny checkpoints (a ColBERT and a ColQwen2).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.cli.conftest import cli_command
from tests.encoders.checkpoints import write_hf_colbert
from tests.encoders.hub_cache import install
from tests.encoders.vision_checkpoints import build_colqwen2
from tests.serve.live import free_port

COLBERT = "tiny-org/colbert-tiny"
COLQWEN = "tiny-org/colqwen2-tiny"
PIXELS = 16 * 28 * 28


@pytest.fixture(scope="module")
def hub_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("hub-cli")
    cache = root / "hf" / "hub"
    install(write_hf_colbert(root / "colbert"), cache, COLBERT)
    install(build_colqwen2(root / "colqwen2"), cache, COLQWEN)
    return dict(
        os.environ,
        HF_HUB_CACHE=str(cache),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HOME=str(root / "hf"),
    )


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli_command(), *args], capture_output=True, text=True, timeout=300, env=env, check=False
    )


def flat(text: str) -> str:
    """The terminal wraps long messages; compare words."""
    return " ".join(text.split())


def test_colbert_by_hub_id_options_recorded(tmp_path: Path, hub_env: dict[str, str]) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("the cat sat on the mat\n\nlate interaction search is what the store is")
    db = str(tmp_path / "c.db")
    done = cli(hub_env, "ingest", str(notes), "-s", db, "--encoder", COLBERT,
               "--encoder-option", "query_length=8", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = cli(hub_env, "search", "cat mat", "-s", db, "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["text"].startswith("the cat")
    info = json.loads(cli(hub_env, "info", "-s", db, "--json").stdout)
    assert info["encoder"] == f"colbert:{COLBERT}"
    refused = cli(hub_env, "search", "cat", "-s", db, "--encoder-option", "query_length=10")
    assert refused.returncode == 2
    assert "query_length: the store was built with 8, given 10" in flat(refused.stderr)
    runtime = cli(hub_env, "search", "cat", "-s", db, "--encoder-option", "batch_size=2")
    assert runtime.returncode == 0, runtime.stderr


def test_not_cached_offline_exits_2_with_the_fetch_command(
    tmp_path: Path, hub_env: dict[str, str]
) -> None:
    notes = tmp_path / "n.txt"
    notes.write_text("hello")
    done = cli(hub_env, "ingest", str(notes), "-s", str(tmp_path / "x.db"), "-e", "org/absent")
    assert done.returncode == 2
    assert "hf download org/absent" in flat(done.stderr)


def test_vision_by_hub_id_then_serve_warms_up_before_ready(
    tmp_path: Path, hub_env: dict[str, str]
) -> None:
    image = tmp_path / "page.png"
    Image.new("RGB", (90, 60), "white").save(image)
    db = str(tmp_path / "v.db")
    done = cli(hub_env, "ingest", str(image), "-s", db, "--encoder", COLQWEN,
               "--encoder-option", f"max_pixels={PIXELS}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = cli(hub_env, "search", "revenue", "-s", db, "--json")
    assert found.returncode == 0 and len(json.loads(found.stdout)) == 1, found.stderr
    port = free_port()
    process = subprocess.Popen(
        [*cli_command(), "serve", "--store", db, "--port", str(port)],
        env=hub_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "never ready"
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        hits = httpx.post(f"{base}/search", json={"query": "revenue", "k": 1}, timeout=60)
        assert hits.status_code == 200, hits.text
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=60)
    # Ready came after the model loaded and a search ran (printed before listening).
    warm = output.index("warm-up search")
    assert warm < output.index("Uvicorn running")
    assert f"colqwen2:{COLQWEN}" in output[:warm] or COLQWEN in output[:warm]


def test_serve_refuses_a_store_whose_model_moved(tmp_path: Path, hub_env: dict[str, str]) -> None:
    folder = write_hf_colbert(tmp_path / "model")
    notes = tmp_path / "n.txt"
    notes.write_text("hello world")
    db = str(tmp_path / "m.db")
    assert cli(hub_env, "ingest", str(notes), "-s", db, "-e", str(folder)).returncode == 0
    moved = shutil.move(str(folder), tmp_path / "moved")
    port = str(free_port())
    refused = cli(hub_env, "serve", "--store", db, "--port", port)
    assert refused.returncode == 2
    assert "--encoder NEWDIR" in flat(refused.stderr) and "Uvicorn running" not in refused.stderr
    fixed = cli(hub_env, "search", "hello", "-s", db, "--encoder", str(moved), "--json")
    assert fixed.returncode == 0, fixed.stderr
