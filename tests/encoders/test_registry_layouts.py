"""One way to register an encoder family (the @register decorator), the layout
packages that hold the built-in families, and the old module paths that forward."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from latestore.encoders import PrecomputedVectors, registry
from latestore.encoders.moved import MOVED
from latestore.encoders.registry import families, load_encoder, register
from tests.encoders.checkpoints import write_hf_colbert

BUILT_IN = ("latestore.encoders.text.", "latestore.encoders.vision.")


@pytest.fixture
def scratch_names() -> Iterator[list[str]]:
    added: list[str] = []
    yield added
    for name in added:
        registry._FAMILIES.pop(name, None)


def test_every_built_in_family_registers_itself_from_its_layout_package() -> None:
    built_in = [f for f in families() if f.load.__module__.startswith(BUILT_IN)]
    names = [f.name for f in built_in]
    assert len(names) == len(set(names)) == 12
    assert [f.name for f in built_in if f.detect is None] == ["minilm"]
    # Each family's loader lives in the module that registered it, under its layout.
    text = {f.name for f in built_in if f.load.__module__.startswith(BUILT_IN[0])}
    assert text == {"minilm", "bge-m3", "pylate", "colbert"}
    # ColBERT's detector takes any folder with a top-level projection: tried last.
    assert built_in[-1].name == "colbert" and built_in[-1].generic
    assert [f.name for f in built_in if f.generic] == ["colbert"]


def test_a_decorated_layout_family_is_found_by_its_detector(
    tmp_path: Path, scratch_names: list[str]
) -> None:
    def is_marked(model_dir: Path, config: dict[str, Any]) -> bool:
        return (model_dir / "marker.txt").is_file()

    @register("marked-layout", detect=is_marked)
    def load(model_dir: Path, **options: Any) -> PrecomputedVectors:
        return PrecomputedVectors(dim=int(options.get("dim", 4)), name="marked")

    scratch_names.append("marked-layout")
    (tmp_path / "marker.txt").write_text("x")
    encoder: Any = load_encoder(tmp_path, dim=6)
    assert encoder.name == "marked" and encoder.dim == 6
    assert encoder.spec == str(tmp_path.resolve())
    # A layout family is not a name load_encoder accepts on its own.
    assert "marked-layout" not in registry.registered_names()
    # ... and a real ColBERT folder still goes to the built-in family.
    colbert: Any = load_encoder(write_hf_colbert(tmp_path / "colbert"))
    assert colbert.name != "marked"


def test_register_refuses_names_with_a_slash() -> None:
    with pytest.raises(ValueError, match="no '/'"):
        register("org/name", PrecomputedVectors)


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_old_module_paths_warn_and_forward(
    old: str, new: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_name, new_name = f"latestore.encoders.{old}", f"latestore.encoders.{new}"
    monkeypatch.delitem(sys.modules, old_name, raising=False)
    with pytest.warns(DeprecationWarning, match=new_name.replace(".", r"\.")) as caught:
        forwarded = importlib.import_module(old_name)
    assert caught[0].filename == __file__  # the warning names the importing line
    home = importlib.import_module(new_name)
    public = [n for n in vars(home) if not n.startswith("_")]
    assert public
    for name in public:
        assert getattr(forwarded, name) is getattr(home, name)
    monkeypatch.delitem(sys.modules, old_name)


def test_the_old_family_list_warns_and_names_the_layout_modules() -> None:
    with pytest.warns(DeprecationWarning, match="families"):
        modules = registry.FAMILY_MODULES
    assert modules[0] == "latestore.encoders.text.bgem3"
    assert modules[-1] == "latestore.encoders.text.colbert"


def test_the_order_folders_are_tried_in_does_not_depend_on_import_order() -> None:
    code = (
        "import latestore.encoders.vision.colqwen2_engine\n"  # a late family, imported first
        "from latestore.encoders import registry\n"
        "print([f.load.__module__ for f in registry.families() if f.detect is not None])\n"
    )
    late_first = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    plain = subprocess.run(
        [sys.executable, "-c", code.split("\n", 1)[1]], capture_output=True, text=True, check=True
    ).stdout
    assert late_first == plain
    order = ast.literal_eval(plain)
    assert order[0] == "latestore.encoders.text.bgem3"
    assert order[-1] == "latestore.encoders.text.colbert"  # the generic layout, last
