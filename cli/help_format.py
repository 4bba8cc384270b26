"""Help output without a type column on on/off flags.

typer (0.2x) prints every option's type, so flags read ``--json <bool>`` and
``--help <bool>``: a flag takes no value, and the type only confuses. Options that take
a value keep their type (``<int>``, ``<str>``). Applied once, when the CLI is imported;
if typer changes the method this hooks, help falls back to typer's own format.
"""

from __future__ import annotations

from typing import Any

_applied = False


def hide_flag_types() -> None:
    global _applied
    if _applied:
        return
    try:
        from typer.core import TyperOption
    except ImportError:  # pragma: no cover - another typer layout: keep its format
        return
    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None:  # pragma: no cover
        return

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False):
            return None
        return shown(self, ctx)  # type: ignore[no-any-return]

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
    _applied = True
