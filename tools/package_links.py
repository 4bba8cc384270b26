"""Link the mapped folders into ``DEST/latestore`` for a machine that cannot pip install.

The GPU check machine has python, torch and triton but no package index, so the
editable install (``make install``) is not available there. This builds the same view
of the package from pyproject's ``package-dir``: put ``DEST`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def link(dest: Path) -> None:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    shutil.rmtree(dest, ignore_errors=True)
    top = dest / "latestore"
    top.mkdir(parents=True)
    for entry in (ROOT / mapping["latestore"]).iterdir():
        if entry.name != "__pycache__":
            (top / entry.name).symlink_to(entry)
    for package, folder in mapping.items():
        parts = package.split(".")
        if len(parts) == 2:  # deeper packages are folders inside these
            (top / parts[1]).symlink_to(ROOT / folder)


if __name__ == "__main__":
    link(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "links")
