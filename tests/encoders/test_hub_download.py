"""A hub id that is not cached is downloaded (online), then loads from the cache offline.

The Hugging Face Hub is unreachable here; ``tests/encoders/hub_server.py`` stands in for
it at ``HF_ENDPOINT`` (a real HTTP server on a local port). Everything from latestore's
``load_encoder`` through ``huggingface_hub.snapshot_download`` to the cache on disk is
the real code. ``huggingface_hub`` reads ``HF_ENDPOINT`` when it is imported, so each
load runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latestore.encoders.registry import load_encoder
from tests.encoders.checkpoints import write_hf_colbert
from tests.encoders.hub_cache import commit_of
from tests.encoders.hub_server import HubStandIn, serve_hub

REPO = "tiny-org/colbert-download"
QUERY = "late interaction search"

LOAD = """
import json, sys
import numpy as np
from latestore.encoders.registry import load_encoder
encoder = load_encoder(sys.argv[1], device="cpu")
np.save(sys.argv[2], encoder.encode_queries([sys.argv[3]])[0])
print(json.dumps({"build": encoder.build, "fingerprint": encoder.fingerprint}))
"""


def _load(repo: str, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LOAD, repo, str(out), QUERY],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def online_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_DISABLE_TELEMETRY="1")
    return env


def test_an_uncached_hub_id_is_downloaded_then_loads_offline(
    tmp_path: Path, online_env: dict[str, str]
) -> None:
    checkpoint = write_hf_colbert(tmp_path / "checkpoint", seed=3)
    hub = HubStandIn(REPO, checkpoint, commit_of(checkpoint))
    with serve_hub(hub) as endpoint:
        online = _load(REPO, tmp_path / "online.npy", online_env | {"HF_ENDPOINT": endpoint})
        assert online.returncode == 0, online.stderr
        downloads = [r for r in hub.requests if r.startswith("GET") and "/resolve/" in r]
        assert len(downloads) == len(hub.files)  # every file fetched once
        hub.requests.clear()
        # Offline, with the server still up: the cache answers, nothing is asked for.
        offline = _load(
            REPO,
            tmp_path / "offline.npy",
            online_env | {"HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "1"},
        )
        assert offline.returncode == 0, offline.stderr
        assert hub.requests == []
    record = json.loads(online.stdout.strip().splitlines()[-1])
    assert record["build"]["source"] == "hub"
    assert record["build"]["commit"] == hub.commit
    assert json.loads(offline.stdout.strip().splitlines()[-1]) == record
    # The hub's own cache layout, at the served commit.
    repo_dir = tmp_path / "hub" / f"models--{REPO.replace('/', '--')}"
    assert (repo_dir / "refs" / "main").read_text() == hub.commit
    snapshot = repo_dir / "snapshots" / hub.commit
    assert sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())
    # The downloaded model is the checkpoint: the same vectors as loading the folder.
    by_folder = load_encoder(checkpoint, device="cpu")
    assert record["fingerprint"] == by_folder.fingerprint
    expected = by_folder.encode_queries([QUERY])[0]
    np.testing.assert_array_equal(np.load(tmp_path / "online.npy"), expected)
    np.testing.assert_array_equal(np.load(tmp_path / "offline.npy"), expected)


def test_a_hub_id_the_hub_does_not_have_is_a_clear_error(
    tmp_path: Path, online_env: dict[str, str]
) -> None:
    checkpoint = write_hf_colbert(tmp_path / "checkpoint", seed=3)
    hub = HubStandIn(REPO, checkpoint, commit_of(checkpoint))
    with serve_hub(hub) as endpoint:
        missing = _load(
            "tiny-org/no-such-model", tmp_path / "x.npy", online_env | {"HF_ENDPOINT": endpoint}
        )
    assert missing.returncode != 0
    last = missing.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "latestore.errors.EncoderError: the Hugging Face Hub has no model 'tiny-org/no-such-model'"
    ), missing.stderr[-2000:]
    assert not (tmp_path / "hub" / "models--tiny-org--no-such-model" / "snapshots").exists()
