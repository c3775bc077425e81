"""``python -m pondfs.cli``: the ``pond`` command."""

from . import main

main()
