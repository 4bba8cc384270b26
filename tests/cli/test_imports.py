"""What each command imports: a command loads only what it uses (issue 23, cold starts).

Each case runs the console script's code in a fresh interpreter and reports, at exit,
which heavy modules ended up in ``sys.modules``. Seconds are measured in
bench/cold_start.py; this locks in the import graph that those seconds come from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from latestore import Page, Store
from latestore.index.devices import gpu_nodes_present
from tests.cli.conftest import run_cli

HEAVY = ("torch", "transformers", "faiss", "triton", "alembic", "latestore.evaluation")

_REPORT = (
    "import atexit, sys\n"
    f"heavy = {HEAVY!r}\n"
    "atexit.register(lambda: print('LOADED=' + ','.join(m for m in heavy if m in sys.modules),"
    " file=sys.stderr))\n"
    "from latestore.cli.main import main\n"
    "sys.argv = ['latestore', *sys.argv[1:]]\n"
    "main()\n"
)

PAGES = [
    "A propeller slipstream changes the lift distribution of the wing behind it.",
    "Boundary layer transition on a flat plate at supersonic speeds.",
    "Heat transfer to a blunt body in hypersonic flow.",
]


@pytest.fixture(scope="module")
def minilm_store(tmp_path_factory: pytest.TempPathFactory, minilm: object) -> Path:
    db = tmp_path_factory.mktemp("imports") / "store.db"
    with Store.open(db, minilm) as store:  # type: ignore[arg-type]
        store.add_pages([Page(text=text) for text in PAGES])
        store.reindex()  # a snapshot, as after `latestore ingest`
    return db


def run_child(
    code: str,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter (nothing imported yet); it must succeed."""
    done = subprocess.run(
        [sys.executable, "-c", code, *(args or [])],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def loaded(args: list[str]) -> set[str]:
    done = run_child(_REPORT, args)
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED="))
    return set(filter(None, line.removeprefix("LOADED=").split(",")))


pytestmark = pytest.mark.skipif(
    gpu_nodes_present(), reason="on a GPU machine the index asks torch for CUDA"
)


@pytest.mark.parametrize(
    ("command", "allowed"),
    [
        # The full-text index alone: no model, no FAISS index, no kernels.
        (["search", "slipstream", "--mode", "lexical"], set()),
        # The default model's query and the CPU rerank without torch (numpy paths);
        # the FAISS candidate index is what this search reads.
        (["search", "wing slipstream"], {"faiss"}),
        (["search", "wing slipstream", "--mode", "hybrid", "--json"], {"faiss"}),
        (["info"], {"faiss"}),  # the index's description comes from the loaded index
        (["list"], set()),
        (["delete", "--id", "999", "--missing-ok"], set()),
    ],
)
def test_a_command_imports_only_what_it_uses(
    minilm_store: Path, command: list[str], allowed: set[str]
) -> None:
    found = loaded([*command, "--store", str(minilm_store)])
    assert found <= allowed, f"{command} imported {sorted(found - allowed)}"


def test_help_imports_no_store_or_model() -> None:
    assert loaded(["--help"]) == set()


@pytest.mark.parametrize("mode", ["maxsim", "hybrid"])
def test_a_search_without_torch_ranks_as_the_torch_path(minilm_store: Path, mode: str) -> None:
    # The CLI process takes the numpy query encoder and rerank; this one has torch.
    query = "propeller slipstream over the wing"
    done = run_cli("search", query, "--store", str(minilm_store), "--mode", mode, "--json")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    with Store.open(minilm_store) as store:
        want = store.search(query, k=10, mode=mode)
    assert [hit["page_id"] for hit in got] == [hit.page_id for hit in want]
    for hit, expected in zip(got, want, strict=True):
        assert hit["score"] == pytest.approx(expected.score, rel=1e-5)
        if expected.maxsim_score is not None:
            assert hit["maxsim_score"] == pytest.approx(expected.maxsim_score, rel=1e-5)


_MODELS_BUILT = (
    "import atexit, sys\n"
    "def report():\n"
    "    from latestore import models\n"
    "    names = ('Page', 'StoredPage', 'StoreStats', 'SearchHit', 'StoreConfig')\n"
    "    built = [n for n in names if getattr(models, n).__pydantic_complete__]\n"
    "    print('BUILT=' + ','.join(built), file=sys.stderr)\n"
    "atexit.register(report)\n"
    "from latestore.cli.main import main\n"
    "sys.argv = ['latestore', *sys.argv[1:]]\n"
    "main()\n"
)


def test_a_lexical_search_builds_only_the_models_it_returns(minilm_store: Path) -> None:
    # Pydantic builds a model's validator at its first use (defer_build): a search
    # builds its hits' model and the store's config, not Page, StoredPage or StoreStats.
    command = ["search", "slipstream", "--mode", "lexical", "--store", str(minilm_store)]
    done = run_child(_MODELS_BUILT, command)
    assert "slipstream" in done.stdout.lower()
    line = next(x for x in done.stderr.splitlines() if x.startswith("BUILT="))
    assert set(line.removeprefix("BUILT=").split(",")) == {"SearchHit", "StoreConfig"}


@pytest.mark.parametrize("enabled", [True, False])
def test_importing_the_cli_leaves_the_collector_as_it_was(enabled: bool) -> None:
    # The CLI's imports run with the cyclic collector paused; it is back on after.
    code = (
        "import gc\n"
        f"(gc.enable if {enabled} else gc.disable)()\n"
        "import latestore.cli\n"
        "print(gc.isenabled())\n"
    )
    done = run_child(code, timeout=120)
    assert done.stdout.strip() == str(enabled)


@pytest.mark.parametrize("given", [None, "2"])
def test_numpy_loads_with_one_blas_thread_unless_the_caller_chose(given: str | None) -> None:
    # OpenBLAS spins a thread per core at load; the CLI loads numpy with one and then
    # removes the variable (FAISS's OpenBLAS and child processes must not inherit it).
    code = (
        "import os, latestore.cli\n"
        "from threadpoolctl import threadpool_info\n"
        "counts = {i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'}\n"
        "print(sorted(counts), os.environ.get('OPENBLAS_NUM_THREADS'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    done = run_child(code, env=env, timeout=120)
    expected = "[1] None" if given is None else "[2] 2"
    assert done.stdout.strip() == expected
