"""Build `.dev/latestore`, a symlink view of the mapped package folders.

pyproject maps store/, index/, encoders/ and migrations/ into the import package
`latestore`. Type checkers cannot follow setuptools' editable-install finder, so mypy
runs over this view instead; it is rebuilt on every `make typecheck`.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    farm = ROOT / ".dev"
    shutil.rmtree(farm, ignore_errors=True)
    top = farm / "latestore"
    top.mkdir(parents=True)
    for entry in (ROOT / mapping["latestore"]).iterdir():
        if entry.name != "__pycache__":
            (top / entry.name).symlink_to(entry)
    for package, folder in mapping.items():
        parts = package.split(".")
        if len(parts) == 2:
            (top / parts[1]).symlink_to(ROOT / folder)


if __name__ == "__main__":
    main()
