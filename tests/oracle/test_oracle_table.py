"""tools/oracle_table.py: the README table is rendered from the oracle results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "oracle_table.py"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("oracle_table", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(family: str, status: str, diff: float) -> dict[str, object]:
    return {
        "family": family,
        "reference": "ref 1.0",
        "inputs": 8,
        "token_counts_equal": True,
        "max_abs_diff": diff,
        "max_rel_score_diff": diff / 10,
        "status": status,
        "note": "",
    }


def test_rewrite_replaces_only_the_marked_block(tmp_path: Path) -> None:
    tool = _tool()
    results = tmp_path / "results"
    results.mkdir()
    (results / "b.json").write_text(json.dumps(_record("b-family", "known difference", 0.5)))
    (results / "a.json").write_text(json.dumps(_record("a-family", "equal", 1e-7)))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{tool.START}\nstale row\n{tool.END}\noutro\n")
    tool.rewrite(readme, results)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert "stale row" not in text
    rows = [
        line for line in text.splitlines() if line.startswith("| a-") or line.startswith("| b-")
    ]
    assert rows[0].startswith("| a-family | ref 1.0 | equal | 1.0e-07 | 1.0e-08 | yes")
    assert rows[1].startswith("| b-family | ref 1.0 | known difference | 5.0e-01")
    assert text.count("| untested |") == len(tool.UNTESTED)


def test_rewrite_refuses_a_readme_without_markers_or_results(tmp_path: Path) -> None:
    tool = _tool()
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    results = tmp_path / "results"
    results.mkdir()
    with pytest.raises(SystemExit, match="no oracle results"):
        tool.rewrite(readme, results)
    (results / "a.json").write_text(json.dumps(_record("a", "equal", 0.0)))
    with pytest.raises(SystemExit, match="block"):
        tool.rewrite(readme, results)
    assert readme.read_text() == "no markers\n"
