"""`latestore serve`: an HTTP API and a search page over one Store.

Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart).

>>> from latestore.serve import ServeSettings, create_app   # doctest: +SKIP
>>> app = create_app(store, ServeSettings(store="pages.db"))  # doctest: +SKIP
"""

from typing import TYPE_CHECKING, Any

if __name__ != "latestore.serve":
    raise ImportError(f"import latestore.serve, not {__name__!r}: see pyproject package-dir")

if TYPE_CHECKING:
    from latestore.serve.app import create_app
    from latestore.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazy: the CLI imports latestore.serve.command at start, and must not pay for
    # FastAPI (or need it installed) unless `latestore serve` runs.
    if name == "create_app":
        from latestore.serve.app import create_app

        return create_app
    if name == "ServeSettings":
        from latestore.serve.settings import ServeSettings

        return ServeSettings
    raise AttributeError(f"module 'latestore.serve' has no attribute {name!r}")
