"""Each adapter module's ``__all__`` is its whole public surface, and all of it exists."""

from __future__ import annotations

import importlib
import inspect

import pytest


@pytest.mark.parametrize(
    "module_name",
    [
        "latestore.integrations",
        "latestore.integrations.langchain",
        "latestore.integrations.llamaindex",
    ],
)
def test_all_lists_the_public_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    defined_here = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module_name
    }
    assert set(module.__all__) >= defined_here
    assert all(hasattr(module, name) for name in module.__all__)
