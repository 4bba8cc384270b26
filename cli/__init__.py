"""The ``latestore`` command line (typer): ingest, search, info, delete, reindex, evaluate."""

if __name__ != "latestore.cli":
    raise ImportError(f"import latestore.cli, not {__name__!r}: see pyproject package-dir")

from latestore.cli.main import app, parse_metadata

__all__ = ["app", "parse_metadata"]
