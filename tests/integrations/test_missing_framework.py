"""Importing an adapter without its framework names the extra to install.

Uninstalling packages mid-run is not possible, so the missing framework is simulated by
blocking its modules in sys.modules (Python then raises ImportError on import).
"""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.mark.parametrize(
    ("adapter", "framework", "extra"),
    [("langchain", "langchain_core", "langchain"), ("llamaindex", "llama_index", "llamaindex")],
)
def test_missing_framework_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, adapter: str, framework: str, extra: str
) -> None:
    for name in list(sys.modules):
        if name == framework or name.startswith(framework + "."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, framework, None)
    monkeypatch.delitem(sys.modules, f"latestore.integrations.{adapter}", raising=False)

    with pytest.raises(ImportError, match=rf"pip install 'latestore\[{extra}\]'"):
        importlib.import_module(f"latestore.integrations.{adapter}")


def test_core_helpers_need_no_framework(monkeypatch: pytest.MonkeyPatch) -> None:
    import latestore

    # re-importing rebinds latestore.integrations; put the original back afterwards
    monkeypatch.setattr(
        latestore, "integrations", importlib.import_module("latestore.integrations")
    )
    for framework in ("langchain_core", "llama_index"):
        monkeypatch.setitem(sys.modules, framework, None)
    monkeypatch.delitem(sys.modules, "latestore.integrations", raising=False)
    monkeypatch.delitem(sys.modules, "latestore.integrations._common", raising=False)

    module = importlib.import_module("latestore.integrations")

    assert module.image_uri(3) == "latestore://page/3/image"
