"""The ``latestore`` command line (typer): ingest, search, info, delete, reindex, evaluate."""

if __name__ != "latestore.cli":
    raise ImportError(f"import latestore.cli, not {__name__!r}: see pyproject package-dir")

import gc
import os
import sys

# Importing the CLI's dependencies (SQLAlchemy, pydantic, typer, rich, numpy) allocates
# a few hundred thousand long-lived objects and no garbage; the cyclic collector would
# walk them again and again meanwhile (about 5% of a cold lexical search's CPU).
_collecting = gc.isenabled()
gc.disable()
# numpy's OpenBLAS starts a thread per core when numpy loads, and each spins about
# 0.1 s of CPU waiting for work before it sleeps: 0.14 s of a 0.9 s lexical search on
# 2 cores, more with more cores. The CLI's numpy products ask for their thread count
# per call (index/threads.blas_threads raises it for a rerank), so numpy loads with
# one; the variable is removed again so that FAISS's own OpenBLAS, loaded later, and
# child processes do not see it. A caller's own setting is left as it is.
_one_blas_thread = "OPENBLAS_NUM_THREADS" not in os.environ and "numpy" not in sys.modules
if _one_blas_thread:
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
try:
    import numpy  # noqa: F401  (loaded here, under the setting above)

    from latestore.cli.main import app, parse_metadata
finally:
    if _one_blas_thread:
        del os.environ["OPENBLAS_NUM_THREADS"]
    if _collecting:
        gc.enable()

__all__ = ["app", "parse_metadata"]
