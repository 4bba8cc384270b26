"""ColQwen2, 2.5, 3 and 3.5 against colpali-engine 0.3.18, checkpoint by checkpoint.

The checkpoints are saved by colpali-engine's classes; latestore loads them through its
registry exactly as a user's directory. The ColQwen3 remote-code namings (Tomoro, Ops,
nemotron) are the reference checkpoint's own tensors renamed into each published layout,
so the reference forward pass is the oracle for all three.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from latestore.encoders.base import PageContent
from latestore.encoders.registry import load_encoder
from tests.encoders.vision_checkpoints import QWEN_NAMINGS
from tests.oracle import inputs
from tests.oracle.record import TOLERANCE, compare
from tests.oracle.reference import ENGINE_VERSION, QWEN_SPECS, Reference, build_engine_qwen


@pytest.fixture(scope="module")
def page_images() -> list[Any]:
    return inputs.pages()


class _EngineDirs(dict[str, Path]):
    """Reference checkpoints built on first use (an xdist worker builds only its own)."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, key: str) -> Path:
        self[key] = build_engine_qwen(key, self.root / key)
        return self[key]


@pytest.fixture(scope="module")
def engine_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _EngineDirs(tmp_path_factory.mktemp("engine"))


def _ours(model_dir: Path, images: list[Any], **options: Any) -> tuple[list[Any], list[Any]]:
    encoder = load_encoder(model_dir, device="cpu", **options)
    queries = encoder.encode_queries(inputs.QUERIES)
    pages = encoder.encode_pages([PageContent(image=image) for image in images])
    return queries, pages


def _theirs(model_dir: Path, key: str, images: list[Any]) -> tuple[list[Any], list[Any]]:
    spec = QWEN_SPECS[key]
    reference = Reference(model_dir, spec.model_class, spec.processor_class)
    return reference.queries(inputs.QUERIES), reference.pages(images)


@pytest.mark.parametrize("key", list(QWEN_SPECS))
def test_engine_checkpoint_equals_reference(
    key: str, engine_dirs: dict[str, Path], page_images: list[Any]
) -> None:
    model_dir = engine_dirs[key]
    ours = _ours(model_dir, page_images)
    theirs = _theirs(model_dir, key, page_images)
    result = compare(key, ENGINE_VERSION, ours, theirs)
    assert result.token_counts_equal, [q.shape for q in ours[0]]
    assert result.max_abs_diff <= TOLERANCE, result
    assert ours[0][0].shape[1] == (320 if key in ("colqwen3", "colqwen3.5-320") else 128)


def _renamed(engine_dir: Path, naming: str, out: Path) -> Path:
    """The reference ColQwen3 checkpoint rewritten in a published remote-code layout."""
    spec = QWEN_NAMINGS[naming]
    state = load_file(str(engine_dir / "model.safetensors"))
    renamed = {}
    for name, tensor in state.items():
        rest = name.removeprefix("model.")
        if rest.startswith("custom_text_proj."):
            renamed[spec["projection"] + rest[len("custom_text_proj") :]] = tensor
        else:
            renamed[spec["prefix"] + rest] = tensor
    out.mkdir(parents=True)
    save_file(renamed, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((engine_dir / "config.json").read_text())
    dim = int(state["model.custom_text_proj.weight"].shape[0])
    config |= {
        "model_type": spec["model_type"],
        "architectures": spec["architectures"],
        spec["dim_key"]: dim,
    }
    (out / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"):
        (out / name).write_bytes((engine_dir / name).read_bytes())
    return out


@pytest.mark.parametrize("naming", ["tomoro", "ops", "nemotron"])
def test_colqwen3_namings_equal_reference(
    naming: str,
    engine_dirs: dict[str, Path],
    page_images: list[Any],
    tmp_path: Path,
) -> None:
    model_dir = _renamed(engine_dirs["colqwen3"], naming, tmp_path / naming)
    theirs = _theirs(engine_dirs["colqwen3"], "colqwen3", page_images)
    # The causal path is the reference's; nemotron's default is measured separately.
    ours = _ours(model_dir, page_images, bidirectional=False)
    result = compare(f"colqwen3 ({naming} naming)", ENGINE_VERSION, ours, theirs)
    assert result.token_counts_equal
    assert result.max_abs_diff <= TOLERANCE, result


BIDIRECTIONAL_CASES = [
    # nemotron-colembed is trained bidirectional (its card); its default stays so.
    ("colqwen3 (nemotron default)", "colqwen3", "nemotron", {}),
    # latestore's ColQwen3.5 default until the oracle; now an opt-in.
    ("colqwen3.5-320 (bidirectional=True)", "colqwen3.5-320", None, {"bidirectional": True}),
]


@pytest.mark.parametrize(("family", "key", "naming", "options"), BIDIRECTIONAL_CASES)
def test_bidirectional_attention_is_a_measured_departure(
    family: str,
    key: str,
    naming: str | None,
    options: dict[str, Any],
    engine_dirs: dict[str, Path],
    page_images: list[Any],
    tmp_path: Path,
) -> None:
    """colpali-engine's classes run causal; bidirectional attention is a departure."""
    model_dir = engine_dirs[key]
    if naming is not None:
        model_dir = _renamed(model_dir, naming, tmp_path / naming)
    ours = _ours(model_dir, page_images, **options)
    theirs = _theirs(engine_dirs[key], key, page_images)
    result = compare(
        family,
        ENGINE_VERSION,
        ours,
        theirs,
        known_difference="bidirectional attention; the reference class is causal",
    )
    assert result.token_counts_equal
    # Bidirectional attention must actually change the vectors, or the switch is dead.
    assert result.max_abs_diff > 1e-3
    assert np.isfinite(result.max_rel_score_diff)
