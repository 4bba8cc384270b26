"""DeprecationWarnings that point at the caller's line, not at latestore's own."""

from __future__ import annotations

import sys
import warnings


def warn_deprecated(message: str, *, also_skip: tuple[str, ...] = ()) -> None:
    """Warn at the first frame outside the latestore package (its user's code).

    ``also_skip``: more module prefixes to pass over, such as ``("pydantic",)`` for a
    validator that pydantic's constructor calls.
    """
    inside = ("latestore", *also_skip)
    frame = sys._getframe(1)  # our caller, which is stacklevel 2
    level = 2
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(inside):
        frame = frame.f_back
        level += 1
    warnings.warn(message, DeprecationWarning, stacklevel=level)
