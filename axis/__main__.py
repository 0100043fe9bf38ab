"""``python -m axis``: the same as the ``axis`` command."""

from axis.cli import main

main()
