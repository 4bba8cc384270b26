from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

# Without CUDA, Triton kernels run in Triton's interpreter on CPU tensors, so the fused
# MaxSim kernel is tested in CI. It must be set before any kernel module is imported.
if not os.environ.get("LATESTORE_TEST_NO_INTERPRET"):
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# LATESTORE_SHARED_DATA: where a checkout is not beside ../shared (a git worktree).
SHARED_DATA = Path(
    os.environ.get("LATESTORE_SHARED_DATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)
REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    stale = _unlinked_modules()
    if stale:
        pytest.exit(
            f"the editable install does not link {stale[:5]}: run `make install` "
            "(editable_mode=strict links each module file; new files need linking)",
            returncode=4,
        )


def _unlinked_modules() -> list[str]:
    """Package modules in the repository that the strict editable install lacks."""
    import tomllib

    import latestore

    linked = Path(latestore.__file__).parent
    if "__editable__" not in str(linked):
        return []  # a regular install, or the GPU machine's link view
    mapping = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    missing = []
    for package, folder in mapping.items():
        target = linked.joinpath(*package.split(".")[1:])
        for source in (REPO / folder).glob("*.py"):
            if not (target / source.name).exists():
                missing.append(f"{folder}/{source.name}")
    return missing


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared evaluation data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def minilm() -> object:
    from latestore.encoders.text.minilm import MiniLMEncoder

    return MiniLMEncoder()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def db_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "store.db"


PG_URL_ENV = "LATESTORE_TEST_PG_URL"
PG_HOW = (
    f"set {PG_URL_ENV}=postgresql+psycopg://user@host:port/db (a server where that user "
    "may create databases) to run the PostgreSQL variants; .ci/run starts one"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a store test keeps its store: a SQLite file, or a fresh PostgreSQL database.

    The PostgreSQL variant skips unless LATESTORE_TEST_PG_URL is set.
    """
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
        return
    from tests.postgres import fresh_database

    admin_url = os.environ.get(PG_URL_ENV)
    if not admin_url:
        pytest.skip(f"PostgreSQL variant: {PG_HOW}")
    # Derived index files of a URL store live under ~/.cache; keep them per test.
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("HOME", str(tmp_path))
    try:
        with fresh_database(admin_url) as url:
            yield url
    finally:
        monkeypatch.undo()
