"""`latestore serve`: an HTTP API and a search page over one Store.

Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart).

>>> from latestore.serve import ServeSettings, create_app   # doctest: +SKIP
>>> app = create_app(store, ServeSettings(store="pages.db"))  # doctest: +SKIP
"""

from latestore.serve.app import create_app
from latestore.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
