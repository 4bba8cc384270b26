"""The boundary of the front ends: what cli/, serve/, ingest/, integrations/ and
distributed/ may import from the rest of latestore (docs/boundary.md).

Each front end may import any module of the front ends, the public API and the one
internal layer, :mod:`latestore.internal`. Everything else (a store helper module,
the index, an encoder module) is reached through that layer, so a new reach past
it fails here naming the file and line. Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FRONT_ENDS = ("cli", "serve", "ingest", "integrations", "distributed")

# Modules a front end may import names from (the package itself, not its submodules).
PUBLIC = frozenset(
    {
        "latestore",
        "latestore.errors",
        "latestore.models",
        "latestore.evaluation",
        "latestore.store",
        "latestore.encoders",
        "latestore.explain",
        "latestore.internal",
    }
)


def _allowed(module: str) -> bool:
    if module in PUBLIC:
        return True
    parts = module.split(".")
    return len(parts) >= 2 and parts[0] == "latestore" and parts[1] in FRONT_ENDS


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Every absolute latestore module named by an import, with its line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):  # walks function bodies too: lazy imports count
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "latestore" or node.module.startswith("latestore."):
                # `from latestore.store import sql` names a submodule, not an export.
                subs = [f"{node.module}.{alias.name}" for alias in node.names]
                named = [sub for sub in subs if node.module in PUBLIC and _is_submodule(sub)]
                found.extend((node.lineno, sub) for sub in named)
                if len(named) < len(subs):
                    found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend(
                (node.lineno, alias.name)
                for alias in node.names
                if alias.name == "latestore" or alias.name.startswith("latestore.")
            )
    return found


# The import package's folders (pyproject's package-dir), to tell submodules from names.
_FOLDERS = {
    "latestore": "core",
    "latestore.store": "store",
    "latestore.encoders": "encoders",
    "latestore.explain": "explain",
}


def _is_submodule(dotted: str) -> bool:
    package, _, name = dotted.rpartition(".")
    folder = _FOLDERS.get(package)
    if folder is None:
        return False
    return (REPO / folder / f"{name}.py").exists() or (REPO / folder / name).is_dir()


def reaches_past_boundary() -> list[str]:
    problems = []
    for front_end in FRONT_ENDS:
        for path in sorted((REPO / front_end).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, module in _imported_modules(tree):
                if not _allowed(module):
                    problems.append(f"{path.relative_to(REPO)}:{line}: {module}")
    return problems


def test_front_ends_import_only_the_public_api_and_the_internal_layer() -> None:
    assert reaches_past_boundary() == []


def test_the_check_sees_lazy_and_submodule_imports() -> None:
    source = (
        "from latestore.store import Store\n"
        "from latestore.store import sql\n"
        "def f():\n"
        "    from latestore.index.ranking import Ranking\n"
        "    import latestore.store.reader\n"
    )
    seen = [m for _, m in _imported_modules(ast.parse(source)) if not _allowed(m)]
    assert seen == ["latestore.store.sql", "latestore.index.ranking", "latestore.store.reader"]


def test_internal_layer_exports_resolve() -> None:
    import latestore.internal as internal

    for name in internal.__all__:
        assert getattr(internal, name) is not None, name


def test_internal_layer_lists_each_name_once() -> None:
    import latestore.internal as internal

    assert sorted(internal.__all__) == sorted(internal._HOME_OF)
    assert len(internal.__all__) == len(set(internal.__all__))
