if __name__ != "latestore.migrations":
    raise ImportError(f"import latestore.migrations, not {__name__!r}: see pyproject package-dir")
