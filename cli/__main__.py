"""``python -m latestore.cli``: the same app as the ``latestore`` script."""

from latestore.cli.main import main

main()
