"""The on-disk cache of launch shapes the autotuner chose (timing itself needs CUDA:
tests/index/test_maxsim_triton.py), and which candidates it times."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latestore.index import maxsim_tuning as tune

KEY = tune.ShapeKey(tune.KIND_HALF, 128, 32, 32, False, True, 256, 3)
OTHER = KEY._replace(dim=384)


def test_choices_survive_the_process_per_gpu_and_software(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "tuning.json"
    h200 = tune.ChoiceCache(path, "NVIDIA H200|triton 3.6.0|torch 2.11")
    assert h200.load() == {}  # no file yet
    h200.save(KEY, tune.Tuning(64, 4, 3, presplit=True, items=4))
    h200.save(OTHER, tune.Tuning(32, 4, 2, unroll_d=False))
    l4 = tune.ChoiceCache(path, "NVIDIA L4|triton 3.6.0|torch 2.11")
    l4.save(KEY, tune.Tuning(32, 4, 3))
    again = tune.ChoiceCache(path, "NVIDIA H200|triton 3.6.0|torch 2.11").load()
    assert again == {
        KEY: tune.Tuning(64, 4, 3, presplit=True, items=4),
        OTHER: tune.Tuning(32, 4, 2, unroll_d=False),
    }
    assert l4.load() == {KEY: tune.Tuning(32, 4, 3)}
    assert not [p for p in path.parent.iterdir() if p.suffix == ".tmp"]


def test_a_damaged_or_foreign_cache_is_ignored_then_replaced(tmp_path: Path) -> None:
    path = tmp_path / "tuning.json"
    cache = tune.ChoiceCache(path, "gpu")
    path.write_text("{not json")
    assert cache.load() == {}
    path.write_text(json.dumps({"gpu": {"[1, 2]": {"block_t": 64}, "x": "y"}}))
    assert cache.load() == {}  # a key of another layout, a value that is no shape
    path.write_text(json.dumps({"gpu": {json.dumps(list(KEY)): {"block_t": 64, "warp": 4}}}))
    assert cache.load() == {}  # a field Tuning does not have
    cache.save(KEY, tune.Tuning(64, 4, 3))
    assert cache.load() == {KEY: tune.Tuning(64, 4, 3)}


def test_an_unwritable_cache_keeps_the_choice_in_the_process_only(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # the cache's folder would have to be inside a file
    cache = tune.ChoiceCache(blocker / "tuning.json", "gpu")
    cache.save(KEY, tune.Tuning(64, 4, 3))  # logged, not raised: searching goes on
    assert cache.load() == {}


def test_the_cache_file_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LATESTORE_KERNEL_TUNING_CACHE", str(tmp_path / "t.json"))
    assert tune.cache_path() == tmp_path / "t.json"
    monkeypatch.delenv("LATESTORE_KERNEL_TUNING_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert tune.cache_path() == tmp_path / ".cache" / "latestore" / "maxsim-tuning.json"
