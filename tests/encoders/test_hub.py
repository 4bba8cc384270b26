"""Encoders named by hub id, from a hub cache in the hub's own layout, offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latestore.encoders.hub import fetch_command, is_hub_id
from latestore.encoders.registry import load_encoder
from latestore.errors import EncoderError, ModelNotCachedError
from tests.encoders.checkpoints import write_hf_colbert
from tests.encoders.hub_cache import install

REPO = "tiny-org/colbert-tiny"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("hub-checkpoints")
    return write_hf_colbert(root / "v1", seed=0), write_hf_colbert(root / "v2", seed=1)


@pytest.fixture
def cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checkpoints: tuple[Path, Path]
) -> tuple[Path, str, str]:
    """A hub cache holding two revisions of REPO; refs/main at the second."""
    cache = tmp_path / "hub-cache"
    first = install(checkpoints[0], cache, REPO)
    second = install(checkpoints[1], cache, REPO)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache, first, second


def test_hub_id_loads_the_cached_default_branch(
    cache: tuple[Path, str, str], checkpoints: tuple[Path, Path]
) -> None:
    _, _, second = cache
    encoder = load_encoder(REPO, device="cpu")
    by_folder = load_encoder(checkpoints[1], device="cpu")
    assert encoder.spec == REPO  # type: ignore[attr-defined]
    assert encoder.name == f"colbert:{REPO}"
    assert encoder.build == {  # type: ignore[attr-defined]
        "source": "hub",
        "repo_id": REPO,
        "revision": None,
        "commit": second,
        "options": {},
        "unrecorded": [],
    }
    assert encoder.fingerprint == by_folder.fingerprint
    query = "late interaction search"
    np.testing.assert_array_equal(
        encoder.encode_queries([query])[0], by_folder.encode_queries([query])[0]
    )


def test_revision_pins_an_older_commit(
    cache: tuple[Path, str, str], checkpoints: tuple[Path, Path]
) -> None:
    _, first, second = cache
    pinned = load_encoder(REPO, revision=first)
    latest = load_encoder(REPO)
    assert pinned.build["commit"] == first  # type: ignore[attr-defined]
    assert latest.build["commit"] == second  # type: ignore[attr-defined]
    assert pinned.fingerprint == load_encoder(checkpoints[0]).fingerprint
    assert pinned.fingerprint != latest.fingerprint


def test_vector_options_are_recorded_runtime_ones_are_not(cache: tuple[Path, str, str]) -> None:
    encoder = load_encoder(REPO, query_length=8, device="cpu", batch_size=3, pool_factor=2)
    assert encoder.build["options"] == {"pool_factor": 2, "query_length": 8}  # type: ignore[attr-defined]


def test_not_cached_offline_says_how_to_fetch(cache: tuple[Path, str, str]) -> None:
    with pytest.raises(ModelNotCachedError) as caught:
        load_encoder("tiny-org/not-there")
    assert "hf download tiny-org/not-there" in str(caught.value)
    assert str(cache[0]) in str(caught.value)
    assert isinstance(caught.value, EncoderError)
    with pytest.raises(ModelNotCachedError, match=f"hf download {REPO} --revision 0{{40}}"):
        load_encoder(REPO, revision="0" * 40)


def test_what_reads_as_a_hub_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_hub_id("colbert-ir/colbertv2.0") and is_hub_id("vidore/colqwen2-v1.0-hf")
    for not_an_id in ("minilm", "/models/colbert", "./org/name", "a/b/c", "../x", "org/"):
        assert not is_hub_id(not_an_id), not_an_id
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert not is_hub_id("org/name")  # an existing relative folder stays a folder
    assert fetch_command("o/n", None) == "hf download o/n"


def test_revision_is_refused_for_names_and_folders(checkpoints: tuple[Path, Path]) -> None:
    with pytest.raises(EncoderError, match="revision= is for hub models"):
        load_encoder(checkpoints[0], revision="main")
