"""The docstring examples of every latestore module run, by their import names.

pytest's own --doctest-modules imports files by path, and the mapped folders refuse
to be imported under their bare names; so the modules are found from the package.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import latestore

# Modules whose import needs an optional framework or CUDA are examined where it exists.
OPTIONAL = ("latestore.integrations.langchain", "latestore.integrations.llamaindex")


def _modules() -> list[str]:
    names = [latestore.__name__]
    for info in pkgutil.walk_packages(latestore.__path__, prefix="latestore."):
        # Alembic's env and revision scripts run only inside Alembic; __main__ runs the CLI.
        if info.name.startswith("latestore.migrations.") or info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return sorted(names)


def _examples(name: str) -> list[doctest.DocTest]:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        if name in OPTIONAL:
            pytest.skip(f"{name}: {exc}")
        raise
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [t for t in finder.find(module, name) if t.examples]


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(
    name: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in _examples(name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring examples failed in {name}"
