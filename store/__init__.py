"""The store: SQL source of truth, the derived index kept in sync, and the Store facade.

``from latestore.store import Store`` (or ``from latestore import Store``). The
modules here hold one job each; the facade in :mod:`latestore.store.store` only
wires them together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if __name__ != "latestore.store":
    raise ImportError(f"import latestore.store, not {__name__!r}: see pyproject package-dir")

if TYPE_CHECKING:
    from latestore.store.store import Store

__all__ = ["Store"]


def __getattr__(name: str) -> Any:
    # Submodules (schema, sql, ...) are imported by migrations and the CLI without
    # the facade, which brings the index and torch.
    if name == "Store":
        from latestore.store.store import Store

        return Store
    raise AttributeError(f"module 'latestore.store' has no attribute {name!r}")
