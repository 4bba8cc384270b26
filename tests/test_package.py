"""The root package: its public surface, lazy imports, and one import name per module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import latestore
from latestore import errors

REPO = Path(__file__).resolve().parent.parent


def test_all_names_exactly_the_public_surface() -> None:
    public = {name for name in dir(latestore) if not name.startswith("_")}
    assert public == set(latestore.__all__) - {"__version__"}
    for name in latestore.__all__:
        assert getattr(latestore, name) is not None, name


def test_every_error_is_exported_and_is_a_latestore_error() -> None:
    defined = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, Exception)
    }
    assert defined <= set(latestore.__all__)
    for name in defined:
        assert issubclass(getattr(latestore, name), errors.LatestoreError)


def _loaded_after(statement: str) -> set[str]:
    code = (
        f"import sys; {statement}; "
        "print(' '.join(m for m in ('sqlalchemy', 'alembic', 'torch', 'transformers', "
        "'faiss', 'typer') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    return set(done.stdout.split())


@pytest.mark.parametrize(
    ("statement", "allowed"),
    [
        ("import latestore", set()),
        ("from latestore import Page, StoreConfig, errors", set()),
        ("import latestore.store", set()),
        ("import latestore.index.maxsim", {"torch"}),
        ("import latestore.index.late_index", {"faiss"}),
        ("import latestore.encoders", set()),
        ("import latestore.encoders.registry", set()),
        ("import latestore.explain", set()),
    ],
)
def test_imports_stay_light(statement: str, allowed: set[str]) -> None:
    assert _loaded_after(statement) <= allowed


def test_mapped_folders_cannot_be_imported_under_their_bare_names() -> None:
    for bare in (
        "store",
        "index",
        "encoders",
        "cli",
        "ingest",
        "core",
        "serve",
        "distributed",
        "explain",
    ):
        done = subprocess.run(
            [sys.executable, "-c", f"import {bare}"], capture_output=True, text=True, cwd=REPO
        )
        assert done.returncode != 0, bare
        assert "ImportError" in done.stderr and "import latestore" in done.stderr, bare
