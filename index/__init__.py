"""Derived, rebuildable state: token candidates, exact MaxSim kernels, snapshots."""

if __name__ != "latestore.index":
    raise ImportError(f"import latestore.index, not {__name__!r}: see pyproject package-dir")
