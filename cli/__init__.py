"""The ``latestore`` command line (typer): ingest, search, info, delete, reindex, evaluate."""

if __name__ != "latestore.cli":
    raise ImportError(f"import latestore.cli, not {__name__!r}: see pyproject package-dir")

import gc

# Importing the CLI's dependencies (SQLAlchemy, pydantic, typer, rich, numpy) allocates
# a few hundred thousand long-lived objects and no garbage; the cyclic collector would
# walk them again and again meanwhile (about 5% of a cold lexical search's CPU).
_collecting = gc.isenabled()
gc.disable()
try:
    from latestore.cli.main import app, parse_metadata
finally:
    if _collecting:
        gc.enable()

__all__ = ["app", "parse_metadata"]
